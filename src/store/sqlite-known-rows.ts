/**
 * The rows of unfinished job requests and task executions as the SQLite store's own
 * connection last wrote or read them, so that the writes every job makes (claim, start,
 * finish) can give back the row after the UPDATE without reading it again: the row
 * before it, with the values the UPDATE sets (RowWrite.apply). A read back by id cost
 * ~7.5 µs on the development VM, four to five times per job.
 *
 * Exact by construction, or not used:
 * - Only the store's writes that keep track of what they change keep the rows (their
 *   `#run` says so); every other write of the store forgets them all first, whatever it
 *   touches, and so does every failed write or commit (a rollback undoes what was kept).
 * - Another connection (a second process on the same file) may have written since: each
 *   write transaction begins by comparing `PRAGMA data_version` with the one the rows
 *   were kept under and forgets them all when it moved. Within the transaction the write
 *   lock keeps other writers out.
 * - A row is derived only after its UPDATE changed exactly that row (its WHERE checks the
 *   state the move starts from), and is dropped once it reaches a final state.
 * - With COLONY_STORE_VERIFY_ROWS=1 (set by `npm test`), the store also reads every
 *   derived row back and throws if the two differ as the model sees them, so a change to
 *   an UPDATE's SQL that its `apply` does not follow fails the tests.
 */
import type { SQLInputValue } from "node:sqlite";
import type { Row } from "./row-mapping.ts";

/** An UPDATE of one row by id (its last parameter) and what it sets, as a function of the row before. */
export interface RowWrite {
  sql: string;
  apply: (before: Row, params: readonly SQLInputValue[]) => Row;
  /** The row's state after it is final: the row is dropped, not kept. */
  final: boolean;
}

/** Bounds memory when a process keeps writing rows it never finishes (dropped oldest first). */
const MAX_ROWS = 16_384;

export class KnownRows<K> {
  readonly #rows = new Map<K, Row>();

  get(id: K): Row | undefined {
    return this.#rows.get(id);
  }

  /** Keeps `row` as the current row of `id`, or drops it after a final write. */
  keep(id: K, row: Row, final = false): void {
    if (final) {
      this.#rows.delete(id);
      return;
    }
    if (this.#rows.size >= MAX_ROWS && !this.#rows.has(id)) {
      this.#rows.delete(this.#rows.keys().next().value!);
    }
    this.#rows.set(id, row);
  }

  drop(id: K): void {
    this.#rows.delete(id);
  }

  clear(): void {
    if (this.#rows.size > 0) this.#rows.clear();
  }
}
