// Turns "the keys of circuit C in etcd now" and "the keys C should have" into the etcd
// transactions that get there without Traefik ever seeing half a change (DESIGN I4). Pure.
//
// Traefik re-reads its whole root at one revision on every watch event, so a change that fits
// one transaction is simply one step. One that does not (etcd allows 128 operations per
// transaction by default: a 200-route circuit has 400 server keys) is staged make-before-break:
//   1. build the new service under the name the router does NOT use (unreferenced: invisible),
//   2. switch the router to it and drop the old service, in one transaction,
//   3. if that name was the staging one, do the same once more back to the canonical name,
// so the end state is always exactly render(circuit), with canonical names only.
import { diffKeys } from './diff.js';

export interface Step {
  puts: Array<[string, string]>;
  deletes: string[];
  /** Each removes a whole subtree in one operation. */
  deletePrefixes: string[];
}

export interface PlanNames {
  /** All prefixes (ending in '/') that can hold keys of this circuit. */
  circuitPrefixes: string[];
  /** `<root>/<proto>/routers/<router>/` */
  routerPrefix: string;
  /** `<root>/<proto>/services/<canonical>/` and its name */
  canonicalService: { prefix: string; name: string };
  /** `<root>/<proto>/services/<staging>/` and its name */
  stagingService: { prefix: string; name: string };
}

export const emptyStep = (): Step => ({ puts: [], deletes: [], deletePrefixes: [] });
export const stepOps = (s: Step): number => s.puts.length + s.deletes.length + s.deletePrefixes.length;

/**
 * @param opsPerStep operations available to each transaction for Traefik keys (the caller
 *   reserves room for its own meta put and lock release).
 */
export function planSteps(
  current: ReadonlyMap<string, string>,
  desired: ReadonlyMap<string, string>,
  names: PlanNames,
  opsPerStep: number,
): Step[] {
  if (opsPerStep < 8) throw new RangeError('opsPerStep must leave room for a router switch');
  // Removing the whole circuit: one delete per subtree, also catching keys we never saw.
  if (desired.size === 0) {
    return [{ puts: [], deletes: [], deletePrefixes: [...names.circuitPrefixes] }];
  }
  const d = diffKeys(current, desired);
  const single: Step = { puts: d.puts, deletes: d.deletes, deletePrefixes: [] };
  if (stepOps(single) <= opsPerStep) return [single];

  const routerServiceKey = `${names.routerPrefix}service`;
  const isRouterKey = (k: string) => k.startsWith(names.routerPrefix);
  const underService = (k: string, prefix: string) => k.startsWith(prefix);
  const servicePrefixes = [names.canonicalService.prefix, names.stagingService.prefix];
  const isServiceKey = (k: string) => servicePrefixes.some((p) => underService(k, p));

  // No router yet: everything else is unreferenced, so write it in chunks and the router last.
  if (!current.has(routerServiceKey)) {
    const steps: Step[] = [];
    const early = d.puts.filter(([k]) => !isRouterKey(k));
    const late = d.puts.filter(([k]) => isRouterKey(k));
    for (let i = 0; i < early.length; i += opsPerStep) steps.push({ ...emptyStep(), puts: early.slice(i, i + opsPerStep) });
    const last: Step = { puts: late, deletes: d.deletes, deletePrefixes: [] };
    if (stepOps(last) > opsPerStep) {
      // Leftovers from an interrupted staging and an oversized router cannot both happen in
      // one valid rendering; delete leftovers by subtree to stay within one transaction.
      last.deletes = d.deletes.filter((k) => !isServiceKey(k));
      last.deletePrefixes = servicePrefixes.filter((p) => ![...desired.keys()].some((k) => underService(k, p)));
    }
    steps.push(last);
    return steps;
  }

  // A live router: build the new service where the router is not looking, then switch.
  const desiredService = [...desired].filter(([k]) => underService(k, names.canonicalService.prefix));
  const nonService = (m: ReadonlyMap<string, string>) => new Map([...m].filter(([k]) => !isServiceKey(k)));
  const inUse = current.get(routerServiceKey) === names.stagingService.name ? names.stagingService : names.canonicalService;
  const other = inUse === names.canonicalService ? names.stagingService : names.canonicalService;

  const steps: Step[] = [];
  const buildAndSwitch = (
    target: { prefix: string; name: string },
    from: { prefix: string; name: string },
    routerNow: ReadonlyMap<string, string>,
  ): Map<string, string> => {
    const puts = desiredService.map(([k, v]): [string, string] => [target.prefix + k.slice(names.canonicalService.prefix.length), v]);
    // Clear leftovers of an interrupted run at the target first (an unreferenced subtree).
    steps.push({ puts: [], deletes: [], deletePrefixes: [target.prefix] });
    for (let i = 0; i < puts.length; i += opsPerStep) steps.push({ ...emptyStep(), puts: puts.slice(i, i + opsPerStep) });
    const routerWanted = nonService(desired);
    routerWanted.set(routerServiceKey, target.name);
    const rd = diffKeys(routerNow, routerWanted);
    const sw: Step = { puts: rd.puts, deletes: rd.deletes, deletePrefixes: [from.prefix] };
    if (stepOps(sw) > opsPerStep) throw new RangeError(`router and middleware changes need ${stepOps(sw)} operations; at most ${opsPerStep} fit one transaction`);
    steps.push(sw);
    return routerWanted;
  };
  // Merge the first cleanup into nothing when there is nothing to clean: keep it simple and
  // always emit it; a delete of an empty range costs one operation in a small transaction.
  const afterFirst = buildAndSwitch(other, inUse, nonService(current).set(routerServiceKey, inUse.name));
  if (other === names.stagingService) {
    buildAndSwitch(names.canonicalService, names.stagingService, afterFirst);
  }
  return steps;
}
