// etcd3's errors, translated into the taxonomy at the protocol's boundary (lib/errors.ts).
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdError,
  EtcdLeaseInvalidError,
  EtcdPermissionDeniedError,
  EtcdRoleNotGrantedError,
  EtcdUserNotFoundError,
  GRPCGenericError,
  GRPCUnauthenticatedError,
} from 'etcd3';
import { isBrokenCircuitError } from 'cockatiel';
import { CircuitryError, DependencyError, MisconfiguredError, SessionLostError } from '../errors.js';

const credentialErrors = [EtcdAuthenticationFailedError, EtcdPermissionDeniedError, EtcdUserNotFoundError, EtcdRoleNotGrantedError, GRPCUnauthenticatedError];

/** Our own errors pass; etcd's become DependencyError, SessionLostError or MisconfiguredError; the rest is a bug. */
export function etcdFailure(err: unknown): Error {
  if (err instanceof CircuitryError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  // etcd no longer knows our lease (it expired while we were paused): our session is lost.
  if (err instanceof EtcdLeaseInvalidError) return new SessionLostError(`etcd session lost: ${e.message}`, { cause: err });
  if (credentialErrors.some((c) => err instanceof c)) {
    return new MisconfiguredError('the service is misconfigured: etcd refused its credentials', { cause: err });
  }
  // Every member skipped as failing (failover.ts) within one attempt's turn: an outage too.
  if (err instanceof GRPCGenericError || err instanceof ClientClosedError || isBrokenCircuitError(err) || (err instanceof EtcdError && /unavailable|timed out|deadline/i.test(e.message))) {
    return new DependencyError('etcd', e.message, { cause: err });
  }
  return e;
}

/**
 * A read or watch at a revision that compaction has removed. (etcd cancels such a watch with its
 * compact_revision set and, in 3.4, an empty cancel reason, which etcd3 reports as
 * "Watcher canceled: ".)
 */
export const isCompacted = (err: unknown): boolean => /compacted|^Watcher canceled:\s*$/i.test((err as Error | undefined)?.message ?? '');

/** Runs an etcd call, translating its failure. */
export async function etcdCall<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw etcdFailure(err);
  }
}
