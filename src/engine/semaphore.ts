/** A counting semaphore: at most `limit` holders; waiters are served in order. */
export class Semaphore {
  readonly limit: number;
  #available: number;
  readonly #waiters: Array<() => void> = [];

  readonly #onRelease: (() => void) | undefined;

  /** `onRelease` runs after every release (a slot freed or handed to a waiter). */
  constructor(limit: number, onRelease?: () => void) {
    this.limit = limit;
    this.#available = limit;
    this.#onRelease = onRelease;
  }

  acquire(): Promise<void> {
    if (this.#available > 0) {
      this.#available--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#available++;
    this.#onRelease?.();
  }

  /** Holders now. */
  get busy(): number {
    return this.limit - this.#available;
  }

  get waiting(): number {
    return this.#waiters.length;
  }
}
