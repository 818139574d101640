// Assertions catch programmer errors (broken invariants) and stay on in
// production: continuing after one could acknowledge a write that is lost.

export class InvariantViolation extends Error {
  override readonly name = 'InvariantViolation';
}

export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new InvariantViolation(message);
}
