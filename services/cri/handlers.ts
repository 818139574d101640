// One adapter from async functions to gRPC unary handlers: a CriError
// becomes its status code and message; anything else is INTERNAL, logged.

import { status, type handleUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { CriError } from './errors.js';
import type { CriLogger } from './logger.js';

function serviceError(code: status, message: string): Partial<ServiceError> {
  return { code, details: message, message };
}

export function unary<Request, Response>(log: CriLogger, method: string, handler: (request: Request) => Response | Promise<Response>): handleUnaryCall<Request, Response> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request))
      .then(
        (response) => callback(null, response),
        (error: unknown) => {
          if (error instanceof CriError) {
            log.debug(`${method}: ${status[error.code]}: ${error.message}`);
            callback(serviceError(error.code, error.message));
            return;
          }
          const message = error instanceof Error ? error.message : String(error);
          log.error(`${method} failed: ${error instanceof Error && error.stack !== undefined ? error.stack : message}`);
          callback(serviceError(status.INTERNAL, `${method}: ${message}`));
        },
      )
      .catch((error: unknown) => log.error(`${method}: answering failed: ${String(error)}`));
  };
}
