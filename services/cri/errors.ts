// Errors mast cri answers with: each carries the gRPC status code the CRI
// client sees, and a message naming the id or field at fault.

import { status } from '@grpc/grpc-js';

export class CriError extends Error {
  override readonly name = 'CriError';

  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export function notFound(kind: 'sandbox' | 'container', id: string): CriError {
  return new CriError(status.NOT_FOUND, `${kind} "${id}" not found`);
}

export function invalidArgument(field: string, message: string): CriError {
  return new CriError(status.INVALID_ARGUMENT, `${field}: ${message}`);
}

export function failedPrecondition(message: string): CriError {
  return new CriError(status.FAILED_PRECONDITION, message);
}

export function unimplemented(message: string): CriError {
  return new CriError(status.UNIMPLEMENTED, message);
}
