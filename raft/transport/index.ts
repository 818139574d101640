// Peer messaging between masters.
export { decodeMessage, encodeMessage, messageFromWire, messageToWire, WireFormatError } from './codec.js';
export * from './grpc-transport.js';
