// One etcd client per cold start. Fault handling, in three parts:
//   - retries: a failed attempt that may be transient (etcd3's recoverable errors: DEADLINE_EXCEEDED,
//     UNAVAILABLE, …) is retried on the next member, twice at most. Fencing, not client-side
//     state, keeps retries safe: every transaction we send is guarded so that a retry of one that
//     did apply is refused and recognised (the acquire puts only if its key does not exist; every
//     step of a fenced apply compares what its own earlier attempt changed).
//   - deadlines: every attempt gets a deadline of its own and the call a total budget
//     (`deadline()` below); etcd3's default of a fixed Date shared by all attempts spent it on
//     the first one, so a retry after a timeout started already expired.
//   - failover (failover.ts): with several endpoints, a member that failed an attempt is skipped
//     for a while, so an unreachable member costs one attempt deadline, not one in every N calls.
//     (The library's own default, a breaker that opens after 3 failures and stays open for 5 s
//     even with a single endpoint, turns a 100 ms etcd restart into seconds of refused calls.)
import { readFileSync } from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { ExponentialBackoff, handleWhen, isBrokenCircuitError, noop, retry } from 'cockatiel';
import type { Config } from '../config.js';
import { DependencyError } from '../errors.js';
import { HostBreakers } from './failover.js';

/** How many attempt deadlines one call may spend in total (with the retries on other members). */
export const BUDGET_ATTEMPTS = 2;

/**
 * gRPC keepalive: a connection whose peer stopped answering (partitioned, frozen) is declared
 * dead after KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS, failing the streams on it (a watch, a
 * keepalive) so they reconnect to another member. etcd refuses pings more frequent than its
 * --grpc-keepalive-min-time (5 s by default; a client pinging faster gets GOAWAY "too_many_pings"),
 * so 6 s keeps a margin for timer and network jitter. Pings are sent only while calls are active.
 */
export const KEEPALIVE_TIME_MS = 6000;
export const KEEPALIVE_TIMEOUT_MS = 1500;

export function createEtcd(cfg: Config['etcd']): Etcd3 {
  const breakers = cfg.endpoints.length > 1 ? new HostBreakers() : null;
  const options: IOptions = {
    hosts: cfg.endpoints,
    dialTimeout: cfg.timeoutMs,
    // A deadline on every unary call that does not set its own (lease grant and revoke, the
    // authentication call): against a server that accepts connections but never answers (frozen,
    // partitioned) they would otherwise wait forever. A function, so every attempt gets a fresh
    // one. Streams (watch, keepalive) have none.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: new Date(Date.now() + cfg.timeoutMs) }),
    faultHandling: {
      host: (h) => breakers?.for(h) ?? noop,
      global: retry(
        handleWhen((e) => isRecoverableError(e) || isBrokenCircuitError(e)),
        { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 25, maxDelay: 200 }) },
      ),
    },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 500,
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
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

/**
 * grpc call options for one etcd call, so that no call can hang an invocation: each attempt (the
 * first and every retry on another member) gets a deadline of `attemptMs` from when it starts,
 * and none runs past `totalMs` after this was created; an attempt that would start later fails
 * with DependencyError without sending anything.
 *
 * etcd3 merges these options into every attempt's options afresh (`{...defaults, ...these}`),
 * reading `deadline` each time: it is a getter, not a fixed Date.
 */
export function deadline(attemptMs: number, totalMs = BUDGET_ATTEMPTS * attemptMs): { readonly deadline: Date } {
  return withDeadline({}, attemptMs, totalMs);
}

/** `options` with deadline()'s `deadline` added (a getter: spreading the result would fix it). */
export function withDeadline<T extends object>(options: T, attemptMs: number, totalMs = BUDGET_ATTEMPTS * attemptMs): T & { readonly deadline: Date } {
  const until = Date.now() + totalMs;
  return Object.defineProperty(options as T & { readonly deadline: Date }, 'deadline', {
    enumerable: true,
    get(): Date {
      const t = Date.now();
      if (t >= until) throw new DependencyError('etcd', `no answer within ${totalMs} ms (every attempt failed or timed out)`);
      return new Date(Math.min(t + attemptMs, until));
    },
  });
}
