// What mast cri logs through: the shape of services/client/log.ts's JSON
// logger, which services/cmd passes in (this module imports only proto/).

export interface CriLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export const silentLogger: CriLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
