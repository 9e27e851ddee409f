/**
 * A set that keeps at most `max` values: adding one more forgets the oldest. For
 * bookkeeping that is normally taken back soon but must not grow without bound when it
 * is not (a job another server took over, say).
 */
export class BoundedSet<T> {
  readonly #values = new Set<T>();
  readonly #max: number;

  constructor(max: number) {
    if (!(max >= 1)) throw new RangeError(`BoundedSet: max must be at least 1, not ${max}`);
    this.#max = max;
  }

  get size(): number {
    return this.#values.size;
  }

  add(value: T): this {
    this.#values.delete(value); // re-added: the newest
    this.#values.add(value);
    if (this.#values.size > this.#max) {
      this.#values.delete(this.#values.values().next().value as T);
    }
    return this;
  }

  has(value: T): boolean {
    return this.#values.has(value);
  }

  delete(value: T): boolean {
    return this.#values.delete(value);
  }
}
