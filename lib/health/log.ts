// The logging the sweep needs: a subset of @aws-lambda-powertools/logger's Logger, so the handler
// can pass its logger as is and tests can pass a silent one.
export interface SweepLog {
  debug(message: string, extra?: Record<string, unknown>): void;
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
  error(message: string, extra?: Record<string, unknown>): void;
}

export const silentLog: SweepLog = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
