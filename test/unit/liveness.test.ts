// The session's own clock (lib/etcd/liveness.ts): how long a lease is certainly alive. It must
// never believe a lease alive past its real expiry on the server.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LivenessClock } from '../../lib/etcd/liveness.js';

function clockAt(start = 0) {
  let t = start;
  return { now: () => t, set: (x: number) => void (t = x) };
}

describe('LivenessClock', () => {
  it('counts the TTL from the grant request', () => {
    const c = clockAt(1000);
    const l = new LivenessClock(2000, c.now, 1000);
    c.set(2999);
    expect(l.expired()).toBe(false);
    c.set(3001);
    expect(l.expired()).toBe(true);
  });

  it('counts from when the acknowledged renewal was sent, not from when its answer arrived', () => {
    const c = clockAt(0);
    const l = new LivenessClock(2000, c.now, 0);
    c.set(2500); // the answer to a renewal sent at 1000 arrives late (a slow network, a paused process)
    l.renewed(1000, 2);
    expect(l.remainingMs()).toBe(500); // alive until 3000, not 4500
    c.set(3001);
    expect(l.expired()).toBe(true);
  });

  it('an answer to an older renewal never shortens what a newer one established', () => {
    const c = clockAt(0);
    const l = new LivenessClock(2000, c.now, 0);
    c.set(1600);
    l.renewed(1500, 2); // answered by one member
    expect(l.remainingMs()).toBe(1900);
    l.renewed(500, 2); // a slower member's answer to an earlier renewal
    expect(l.remainingMs()).toBe(1900);
  });

  it('uses the TTL etcd reports when it has one', () => {
    const c = clockAt(0);
    const l = new LivenessClock(10_000, c.now, -9_000); // granted long ago: alive until 1000
    l.renewed(0, 3);
    expect(l.remainingMs()).toBe(3000);
  });

  it('property: never believes a lease alive past (last acknowledged send + TTL)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(3000), fc.nat(3000), fc.boolean()), { maxLength: 40 }), (steps) => {
        const c = clockAt(0);
        const ttl = 2000;
        const l = new LivenessClock(ttl, c.now, 0);
        let t = 0;
        let serverExpiry = ttl; // the server resets on receipt, which is at or after the send
        for (const [dt, age, acked] of steps) {
          t += dt;
          c.set(t);
          const sentAt = Math.max(0, t - age); // a renewal sent `age` ago, answered now (or lost)
          if (acked) {
            serverExpiry = Math.max(serverExpiry, sentAt + ttl);
            l.renewed(sentAt, 2);
          }
          expect(t + l.remainingMs()).toBeLessThanOrEqual(Math.max(serverExpiry, t));
        }
      }),
      { numRuns: 500 },
    );
  });
});
