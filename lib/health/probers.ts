// One prober per cold start and CIDR set: its keep-alive connections outlive sweeps.
import type { Config } from '../config.js';
import { Prober } from './probe.js';

const probers = new Map<string, Prober>();

export function getProber(config: Pick<Config, 'allowedBackendCidrs'>): Prober {
  const key = config.allowedBackendCidrs.join(',');
  let p = probers.get(key);
  if (p === undefined) {
    p = new Prober({ allowedCidrs: config.allowedBackendCidrs });
    probers.set(key, p);
  }
  return p;
}

/** Closes the cached probers' connections (tests, tools). */
export function closeProbers(): void {
  for (const p of probers.values()) p.close();
  probers.clear();
}
