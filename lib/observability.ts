// One logger and one metrics emitter for the whole function set (Powertools). Logs are JSON on
// stdout with the request id and, where known, the circuit id; metrics are CloudWatch EMF.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

export const logger = new Logger({ serviceName: 'circuitry' });
export const metrics = new Metrics({
  namespace: 'circuitry',
  serviceName: 'circuitry',
  // An invocation that wrote nothing has no metrics; that is normal here, not a warning.
  logger: {
    debug: (...a: unknown[]) => logger.debug(String(a[0])),
    info: (...a: unknown[]) => logger.info(String(a[0])),
    warn: (...a: unknown[]) =>
      String(a[0]).startsWith('No application metrics') ? logger.debug(String(a[0])) : logger.warn(String(a[0])),
    error: (...a: unknown[]) => logger.error(String(a[0])),
  },
});
export { MetricUnit };

/** The logger as the sweep's log (lib/health/log.ts). */
export const sweepLog = {
  debug: (m: string, e?: Record<string, unknown>) => logger.debug(m, e ?? {}),
  info: (m: string, e?: Record<string, unknown>) => logger.info(m, e ?? {}),
  warn: (m: string, e?: Record<string, unknown>) => logger.warn(m, e ?? {}),
  error: (m: string, e?: Record<string, unknown>) => logger.error(m, e ?? {}),
};
