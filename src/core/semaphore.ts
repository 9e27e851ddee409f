/**
 * A counting semaphore: at most `limit` holders; waiters are served in order. The limit
 * may change while it is used (remote ants connecting and leaving): a higher one admits
 * waiters at once, a lower one makes new holders wait until enough have released.
 */
export class Semaphore {
  #limit: number;
  #busy = 0;
  readonly #waiters: Array<() => void> = [];
  readonly #onRelease: (() => void) | undefined;

  /** `onRelease` runs after every release (a slot freed or handed to a waiter). */
  constructor(limit: number, onRelease?: () => void) {
    this.#limit = limit;
    this.#onRelease = onRelease;
  }

  acquire(): Promise<void> {
    if (this.#busy < this.#limit) {
      this.#busy++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(): void {
    this.#busy--;
    this.#admit();
    this.#onRelease?.();
  }

  get limit(): number {
    return this.#limit;
  }

  setLimit(limit: number): void {
    this.#limit = limit;
    this.#admit();
  }

  #admit(): void {
    while (this.#busy < this.#limit && this.#waiters.length > 0) {
      this.#busy++;
      this.#waiters.shift()!();
    }
  }

  /** Holders now. */
  get busy(): number {
    return this.#busy;
  }

  get waiting(): number {
    return this.#waiters.length;
  }
}
