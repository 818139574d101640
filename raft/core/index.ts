// The public surface of the Raft core.
export * from './types.js';
export { Raft, DEFAULT_LIMITS } from './raft.js';
export { InvariantViolation } from './assert.js';
export * from './describe.js';
