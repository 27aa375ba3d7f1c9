// What the API tells a caller for each failure (lib/http/errors.ts toProblem): field-naming 400s,
// 503 + Retry-After for outages and lost locks, 500 "misconfigured" for refused credentials, and
// nothing (an unexpected 500, logged) for anything else.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, EtcdUserNotFoundError, GRPCUnavailableError } from 'etcd3';
import { toProblem } from '../../lib/http/errors.js';
import {
  classify,
  ConflictError,
  OutcomeUnknownError,
  DependencyError,
  EtcdHistoryChangedError,
  FencedWriteError,
  LockLostError,
  LockTimeoutError,
  NotFoundError,
  RejectedError,
  ResurrectionError,
  SessionLostError,
  StaleFenceError,
} from '../../lib/errors.js';
import { etcdFailure } from '../../lib/etcd/failures.js';
import { databaseFailure } from '../../lib/db/store.js';

// The boundaries (lib/etcd, lib/db) translate driver errors; the HTTP edge sees the taxonomy.
const classifyFailure = (err: unknown, dependency: 'etcd' | 'database') => (dependency === 'etcd' ? etcdFailure(err) : databaseFailure(err));

describe('toProblem', () => {
  it('names each unknown field, at its own path', () => {
    const r = z.strictObject({ a: z.strictObject({ b: z.number() }) }).safeParse({ a: { b: 'x', c: 1, d: 2 }, e: 3 });
    const p = toProblem(r.error, 1)!;
    expect(p.status).toBe(400);
    expect(p.extra.errors!.map((e) => e.field).sort()).toEqual(['a.b', 'a.c', 'a.d', 'e']);
  });

  it.each([
    ['a lock wait timeout', new LockTimeoutError('x')],
    ['a lost lock', new LockLostError('x')],
    ['a lost session', new SessionLostError('x')],
    ['a stale fence (a newer holder touched the circuit first)', new StaleFenceError('x')],
    ['a write refused by the etcd fence', new FencedWriteError('lock-lost', 0)],
    ["etcd's history changed under the database", new EtcdHistoryChangedError('x')],
    ['etcd down', new DependencyError('etcd', 'down', { cause: new GRPCUnavailableError('14 UNAVAILABLE') })],
    ['the database down', new DependencyError('database', 'down')],
  ])('503 with Retry-After for %s', (_, err) => {
    const p = toProblem(err, 7)!;
    expect(p.status).toBe(503);
    expect(p.extra.headers).toEqual({ 'retry-after': '7' });
  });

  it.each([
    ['a wrong etcd password', new EtcdAuthenticationFailedError('etcdserver: authentication failed, invalid user ID or password')],
    ['a missing etcd permission', new EtcdPermissionDeniedError('etcdserver: permission denied')],
    ['an unknown etcd user', new EtcdUserNotFoundError('etcdserver: user name not found')],
    ['a wrong database password', Object.assign(new Error('password authentication failed for user "app"'), { code: '28P01' })],
  ])('500 "misconfigured" (no retry, no detail) for %s', (_, err) => {
    const p = toProblem(classifyFailure(err, (err as { code?: string }).code ? 'database' : 'etcd'), 7)!;
    expect(p.status).toBe(500);
    expect(p.detail).toMatch(/misconfigured/);
    expect(p.extra.headers).toBeUndefined();
    expect(p.detail).not.toContain((err as Error).message);
  });

  it('leaves anything unexpected to the generic 500 (logged, never detailed)', () => {
    expect(toProblem(new Error('boom'), 1)).toBeNull();
    expect(toProblem(Object.assign(new Error('syntax'), { code: '42601' }), 1)).toBeNull();
    expect(toProblem(new ResurrectionError('x'), 1)).toBeNull();
  });

  it('an unknown outcome is a 503 of its own kind that tells the caller to read before retrying', () => {
    const p = toProblem(new OutcomeUnknownError('the change was queued and could be neither withdrawn nor found applied'), 3)!;
    expect([p.status, p.extra.type, p.extra.headers]).toEqual([503, 'urn:circuitry:outcome-unknown', { 'retry-after': '3' }]);
    expect(p.detail).toMatch(/read the circuit \(its generation\) before retrying/);
    expect(classify(new OutcomeUnknownError('x'))).toMatchObject({ status: 503, retryable: false, label: 'outcome-unknown' });
  });

  it('a conflict that resolves by itself carries Retry-After; others do not', () => {
    expect(toProblem(new ConflictError('x', 'frontend-releasing', 5), 1)!.extra.headers).toEqual({ 'retry-after': '5' });
    expect(toProblem(new ConflictError('x', 'frontend-taken'), 1)!.extra.headers).toBeUndefined();
    expect(toProblem(new ConflictError('x', 'frontend-taken'), 1)!.extra.type).toBe('urn:circuitry:conflict:frontend-taken');
  });
});

describe('classify: one classification for HTTP, events and metrics', () => {
  it.each([
    [new LockTimeoutError('x'), 'retry', 503, true, 'lock-timeout'],
    [new SessionLostError('x'), 'retry', 503, true, 'session-lost'],
    [new StaleFenceError('x'), 'retry', 503, true, 'stale-fence'],
    [new DependencyError('etcd', 'x'), 'retry', 503, true, 'dependency'],
    [new NotFoundError('x'), 'not-found', 404, false, 'not-found'],
    [new ConflictError('x', 'unloading'), 'conflict', 409, false, 'conflict:unloading'],
    [new RejectedError('worker', 'x'), 'rejected', 422, false, 'rejected'],
    [new ResurrectionError('x'), 'integrity', 500, false, 'integrity'],
    [new TypeError('x'), 'bug', 500, false, 'bug'],
  ])('%s', (err, kind, status, retryable, label) => {
    expect(classify(err)).toEqual({ kind, status, retryable, label });
  });

  it('keeps the cause', () => {
    const cause = new Error('ECONNREFUSED');
    expect(new DependencyError('etcd', 'down', { cause }).cause).toBe(cause);
  });
});

describe('classifyFailure (etcd)', () => {
  it('maps an expired lease to a lost session (503), not an unexpected error', async () => {
    const { EtcdLeaseInvalidError } = await import('etcd3');
    expect(classifyFailure(new EtcdLeaseInvalidError('123'), 'etcd')).toBeInstanceOf(SessionLostError);
    expect(toProblem(classifyFailure(new EtcdLeaseInvalidError('123'), 'etcd'), 5)?.status).toBe(503);
  });
});

describe('classifyFailure (database)', () => {
  it('treats transport failures and transient SQLSTATEs as an outage, bugs and real SQL errors as themselves', () => {
    expect(classifyFailure(new Error('Connection terminated unexpectedly'), 'database')).toBeInstanceOf(DependencyError);
    expect(classifyFailure(new Error('Query read timeout'), 'database')).toBeInstanceOf(DependencyError);
    expect(classifyFailure(Object.assign(new Error('the database system is shutting down'), { code: '57P03' }), 'database')).toBeInstanceOf(DependencyError);
    expect(classifyFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), 'database')).toBeInstanceOf(DependencyError);
    const bug = new TypeError("Cannot read properties of undefined (reading 'rows')");
    expect(classifyFailure(bug, 'database')).toBe(bug);
    const sql = Object.assign(new Error('duplicate key'), { code: '23505' });
    expect(classifyFailure(sql, 'database')).toBe(sql);
  });
});
