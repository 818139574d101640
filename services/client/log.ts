// Structured log lines (JSON, one per line, on stderr), as etcd's zap logger
// writes them: what every mast process logs through. Kept apart from the
// master so that agents and components do not load the master to log.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface JsonLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 0, info: 1, warn: 2, error: 3 };

export function jsonLogger(member: string, level: LogLevel): JsonLogger {
  const write = (at: LogLevel, message: string): void => {
    if (LEVELS[at] < LEVELS[level]) return;
    process.stderr.write(`${JSON.stringify({ level: at, ts: new Date().toISOString(), member, msg: message })}\n`);
  };
  return {
    debug: (message) => write('debug', message),
    info: (message) => write('info', message),
    warn: (message) => write('warn', message),
    error: (message) => write('error', message),
  };
}
