// What a request that must fail failed with: the registry's ApiError, or a
// gRPC call's ServiceError. A request that succeeds fails the test.

import type * as grpc from '@grpc/grpc-js';
import { ApiError } from '../../services/apiserver/registry.js';

export async function refusal(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error('expected the request to be refused');
}

export async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}
