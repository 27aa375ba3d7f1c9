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

  it('counts from when the acknowledged keepalive was sent, not from when its answer arrived', () => {
    const c = clockAt(0);
    const l = new LivenessClock(2000, c.now, 0);
    c.set(1000);
    l.fired(); // sent at 1000: the server resets the TTL no earlier than this
    c.set(2500); // the answer arrives late (a slow network, a paused process)
    l.acknowledged(2);
    expect(l.remainingMs()).toBe(500); // alive until 3000, not 4500
    c.set(3001);
    expect(l.expired()).toBe(true);
  });

  it('matches answers to requests in order, and an answer without a request proves nothing', () => {
    const c = clockAt(0);
    const l = new LivenessClock(2000, c.now, 0);
    c.set(500);
    l.fired();
    c.set(1500);
    l.fired();
    c.set(1600);
    l.acknowledged(2); // answers the request of 500
    expect(l.remainingMs()).toBe(900);
    l.acknowledged(2); // answers the request of 1500
    expect(l.remainingMs()).toBe(1900);
    l.acknowledged(2); // nothing pending: no extension
    expect(l.remainingMs()).toBe(1900);
  });

  it('forgets the requests of a broken stream', () => {
    const c = clockAt(0);
    const l = new LivenessClock(2000, c.now, 0);
    c.set(100);
    l.fired(); // lost with its stream
    l.restarted();
    c.set(1800);
    l.fired();
    l.acknowledged(2);
    expect(l.remainingMs()).toBe(2000); // from 1800, not from 100
  });

  it('uses the TTL etcd reports when it has one', () => {
    const c = clockAt(0);
    const l = new LivenessClock(10_000, c.now, -9_000); // granted long ago: alive until 1000
    l.fired();
    l.acknowledged(3);
    expect(l.remainingMs()).toBe(3000);
  });

  it('property: never believes a lease alive past (last acknowledged send + TTL)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(3000), fc.constantFrom<'fire' | 'ack' | 'restart'>('fire', 'ack', 'restart')), { maxLength: 40 }), (steps) => {
        const c = clockAt(0);
        const ttl = 2000;
        const l = new LivenessClock(ttl, c.now, 0);
        let t = 0;
        const sent: number[] = [];
        let serverExpiry = ttl; // the server resets on receipt, which is at or after the send
        for (const [dt, what] of steps) {
          t += dt;
          c.set(t);
          if (what === 'fire') sent.push(t);
          if (what === 'restart') sent.length = 0;
          if (what === 'ack' && sent.length > 0) serverExpiry = Math.max(serverExpiry, sent.shift()! + ttl);
          l[what === 'fire' ? 'fired' : what === 'ack' ? 'acknowledged' : 'restarted']();
          expect(t + l.remainingMs()).toBeLessThanOrEqual(Math.max(serverExpiry, t));
        }
      }),
      { numRuns: 500 },
    );
  });
});
