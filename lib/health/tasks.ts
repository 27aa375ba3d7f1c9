// Background work of one sweep: every task is tracked so the sweep can wait for all of it, and a
// Gate lets producers wait for a condition that tasks change (back-pressure).

/** Resolves when the condition holds, re-checked on every signal. */
export class Gate {
  private waiters: Array<() => void> = [];
  signal(): void {
    for (const w of this.waiters.splice(0)) w();
  }
  async until(cond: () => boolean): Promise<void> {
    while (!cond()) await new Promise<void>((r) => this.waiters.push(r));
  }
}

export class Tasks {
  private readonly running = new Set<Promise<void>>();
  constructor(private readonly gate: Gate) {}

  /** Tracks p (which must not reject) and signals the gate when it settles. */
  track(p: Promise<void>): void {
    this.running.add(p);
    void p.finally(() => {
      this.running.delete(p);
      this.gate.signal();
    });
  }

  get size(): number {
    return this.running.size;
  }

  /** Waits until nothing is running; `between` runs after each round (it may start more work). */
  async drain(between: () => void = () => {}): Promise<void> {
    while (this.running.size > 0) {
      await Promise.all([...this.running]);
      between();
    }
  }
}
