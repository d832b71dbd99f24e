/**
 * A readers-writer gate in one process. Predictions and searches run as readers (many at once);
 * a KB commit and the refresh after it run as the writer, alone, so a reader never sees the KB
 * between the two. A waiting writer goes before readers that arrive after it (no starvation).
 */
export class ReadWriteGate {
  private readers = 0;
  private writing = false;
  private readonly waiting: Array<{ write: boolean; wake: () => void }> = [];

  async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writing || this.waiting.length > 0) await new Promise<void>((wake) => this.waiting.push({ write: false, wake }));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.pump();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writing || this.readers > 0 || this.waiting.length > 0) await new Promise<void>((wake) => this.waiting.push({ write: true, wake }));
    else this.writing = true;
    try {
      return await fn();
    } finally {
      this.writing = false;
      this.pump();
    }
  }

  /** Admit the next writer, or every reader queued before the next writer. */
  private pump(): void {
    if (this.writing || this.waiting.length === 0) return;
    if (this.waiting[0].write) {
      if (this.readers > 0) return;
      this.writing = true;
      this.waiting.shift()!.wake();
      return;
    }
    while (this.waiting.length > 0 && !this.waiting[0].write) {
      this.readers++;
      this.waiting.shift()!.wake();
    }
  }
}

/** Runs tasks one after another (the single in-process KB writer). */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pendingCount = 0;

  run<T>(task: () => Promise<T>): Promise<T> {
    this.pendingCount++;
    const result = this.tail.then(task, task);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result.finally(() => {
      this.pendingCount--;
    });
  }

  /** Tasks queued or running. */
  get pending(): number {
    return this.pendingCount;
  }

  /** Resolves when everything queued so far has finished. */
  async drain(): Promise<void> {
    await this.tail;
  }
}
