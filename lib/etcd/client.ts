// One etcd client per cold start. The library's default fault handling (a per-host circuit
// breaker that stays open for 5 s after 3 failures) turns a 100 ms etcd restart into seconds of
// refused calls; we want fast, bounded retries of transport errors instead, and fencing (not
// client-side state) to keep retries safe.
import { readFileSync } from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import type { Config } from '../config.js';

export function createEtcd(cfg: Config['etcd']): Etcd3 {
  const options: IOptions = {
    hosts: cfg.endpoints,
    dialTimeout: cfg.timeoutMs,
    // A deadline on every unary call that does not set its own (lease grant and revoke, the
    // authentication call): against a server that accepts connections but never answers (frozen,
    // partitioned) they would otherwise wait forever. Streams (watch, keepalive) have none.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + cfg.timeoutMs) }),
    faultHandling: {
      host: () => noop,
      global: retry(handleWhen(isRecoverableError), {
        maxAttempts: 2,
        backoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 400 }),
      }),
    },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 500,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 2_000,
    },
  };
  if (cfg.username !== undefined && cfg.password !== undefined) {
    options.auth = { username: cfg.username, password: cfg.password };
  }
  if (cfg.caFile !== undefined) {
    options.credentials = {
      rootCertificate: readFileSync(cfg.caFile),
      ...(cfg.certFile !== undefined && cfg.keyFile !== undefined
        ? { certChain: readFileSync(cfg.certFile), privateKey: readFileSync(cfg.keyFile) }
        : {}),
    };
  }
  return new Etcd3(options);
}

/** grpc call options with a deadline, so no etcd call can hang an invocation. */
export function deadline(ms: number): { deadline: Date } {
  return { deadline: new Date(Date.now() + ms) };
}
