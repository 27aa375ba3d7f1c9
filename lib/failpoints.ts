// Named points in the code where a test can force an interleaving (after etcd's gofail): a
// failpoint is a no-op unless a test armed it in this process, and then it runs the armed
// action (pause until released, throw) right there. Production never arms one.

/** What the code tells the action where it is (e.g. the invocation's label and the circuit). */
export type FailpointContext = Readonly<Record<string, string | undefined>>;
type Action = (ctx: FailpointContext) => Promise<void> | void;

const armed = new Map<string, Action>();

/** Runs the action armed at `name`, if any (one map lookup otherwise). */
export async function failpoint(name: string, ctx: FailpointContext = {}): Promise<void> {
  const a = armed.get(name);
  if (a !== undefined) await a(ctx);
}

/** Arms `name` with an action; returns the disarm function. */
export function armFailpoint(name: string, action: Action): () => void {
  armed.set(name, action);
  return () => {
    if (armed.get(name) === action) armed.delete(name);
  };
}

/**
 * Arms `name` to pause the callers `when` selects until `release()`; `reached` resolves when the
 * first of them arrives.
 */
export function pauseAt(name: string, when: (ctx: FailpointContext) => boolean = () => true): { reached: Promise<void>; release: () => void; disarm: () => void } {
  let reachedResolve!: () => void;
  let releaseResolve!: () => void;
  const reached = new Promise<void>((r) => (reachedResolve = r));
  const released = new Promise<void>((r) => (releaseResolve = r));
  const disarm = armFailpoint(name, async (ctx) => {
    if (!when(ctx)) return;
    reachedResolve();
    await released;
  });
  return {
    reached,
    release: () => {
      disarm();
      releaseResolve();
    },
    disarm,
  };
}
