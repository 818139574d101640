// What mast cri logs through: the same shape as the master's JSON logger,
// so services/cmd can pass either.

export interface CriLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

export const silentLogger: CriLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** One JSON object per line on stderr: level, ts, component "cri", msg. */
export function jsonLogger(level: LogLevel): CriLogger {
  const write = (at: LogLevel, message: string): void => {
    if (LEVELS[at] < LEVELS[level]) return;
    process.stderr.write(`${JSON.stringify({ level: at, ts: new Date().toISOString(), component: 'cri', msg: message })}\n`);
  };
  return {
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warn: (message) => write('warn', message),
    error: (message) => write('error', message),
  };
}
