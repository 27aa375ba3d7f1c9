// A concurrency limiter with two priorities. The sweep puts probes of routes that failed last
// time (likely to hang until their timeout) in front, so their timeouts overlap the bulk of the
// sweep instead of adding a timeout's worth of tail at its end. FIFO within a priority.

interface Job {
  run: () => void;
}

export class PriorityLimiter {
  private active = 0;
  private readonly urgent: Job[] = [];
  private readonly normal: Job[] = [];
  private urgentHead = 0;
  private normalHead = 0;

  constructor(readonly concurrency: number) {
    if (!(concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
  }

  get activeCount(): number {
    return this.active;
  }

  get pendingCount(): number {
    return this.urgent.length - this.urgentHead + (this.normal.length - this.normalHead);
  }

  run<T>(fn: () => Promise<T>, urgent = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const job: Job = {
        run: () => {
          this.active++;
          let p: Promise<T>;
          try {
            p = fn();
          } catch (err) {
            p = Promise.reject(err);
          }
          p.then(resolve, reject).finally(() => {
            this.active--;
            this.next();
          });
        },
      };
      (urgent ? this.urgent : this.normal).push(job);
      this.next();
    });
  }

  private take(): Job | undefined {
    if (this.urgentHead < this.urgent.length) return this.compact('urgent');
    if (this.normalHead < this.normal.length) return this.compact('normal');
    return undefined;
  }

  private compact(which: 'urgent' | 'normal'): Job {
    const q = which === 'urgent' ? this.urgent : this.normal;
    const head = which === 'urgent' ? this.urgentHead++ : this.normalHead++;
    const job = q[head]!;
    q[head] = undefined as unknown as Job;
    // Drop the consumed prefix now and then, so a long sweep does not grow the arrays forever.
    if (head > 1024 && head * 2 > q.length) {
      q.splice(0, head + 1);
      if (which === 'urgent') this.urgentHead = 0;
      else this.normalHead = 0;
    }
    return job;
  }

  private next(): void {
    while (this.active < this.concurrency) {
      const job = this.take();
      if (job === undefined) return;
      job.run();
    }
  }
}
