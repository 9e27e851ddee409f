/**
 * The lines of a task's output as they arrive, for the virtualised log view: text is
 * split into lines once, on arrival, and the ANSI style each line starts with is
 * recorded (sparsely: only where it is not plain), so drawing any line later needs only
 * that line. The oldest lines are dropped past MAX_LINES, which bounds both memory and
 * the scroll height (browsers cap an element's height at about 33 million pixels).
 */
import { isPlain, PLAIN, styleAfter, type Style } from "./ansi.ts";

export const MAX_LINES = 1_000_000;
const DROP = 100_000;

export class LogModel {
  /** Complete lines; lines[0] is line number `dropped` (0-based). */
  lines: string[] = [];
  /** Lines dropped from the front (too many to keep). */
  dropped = 0;
  /** Bytes skipped before the first byte received (a view that started near the end). */
  skippedBytes = 0;
  /** The unterminated last line. */
  partial = "";
  /** Characters received. */
  chars = 0;
  /** Bytes received (counted by the reader). */
  bytes = 0;
  /** Bumped on every change, for memoisation. */
  version = 0;
  ended = false;
  readonly #starts = new Map<number, Style>();
  #carry: Style = PLAIN;
  /** When starting mid-file, the first (partial) line is dropped. */
  #skipFirst = false;

  constructor(options: { skippedBytes?: number } = {}) {
    this.skippedBytes = options.skippedBytes ?? 0;
    this.#skipFirst = this.skippedBytes > 0;
  }

  /** Lines shown: the kept complete lines and the partial one, if any. */
  get count(): number {
    return this.lines.length + (this.partial ? 1 : 0);
  }

  push(text: string): void {
    if (!text) return;
    this.chars += text.length;
    this.version++;
    let nl = text.indexOf("\n");
    if (nl < 0) {
      this.partial += text;
      return;
    }
    const first = this.partial + text.slice(0, nl);
    this.partial = "";
    // Starting mid-file, the first line is cut: it is not shown.
    if (this.#skipFirst) this.#skipFirst = false;
    else this.#add(first);
    let start = nl + 1;
    while ((nl = text.indexOf("\n", start)) >= 0) {
      this.#add(text.slice(start, nl));
      start = nl + 1;
    }
    this.partial = text.slice(start);
    if (this.lines.length > MAX_LINES) this.#drop();
  }

  end(): void {
    this.ended = true;
    this.version++;
  }

  /** The text of visible line i (0 = the first kept line). */
  line(i: number): string {
    return i < this.lines.length ? this.lines[i]! : this.partial;
  }

  /** The style visible line i starts with. */
  styleAt(i: number): Style {
    if (i >= this.lines.length) return this.#carry;
    return this.#starts.get(i + this.dropped) ?? PLAIN;
  }

  /** The line number (1-based, counting dropped lines) of visible line i. */
  number(i: number): number {
    return this.dropped + i + 1;
  }

  #add(line: string): void {
    if (!isPlain(this.#carry)) this.#starts.set(this.dropped + this.lines.length, this.#carry);
    if (line.includes("\x1b")) this.#carry = styleAfter(this.#carry, line);
    this.lines.push(line);
  }

  #drop(): void {
    this.lines.splice(0, DROP);
    this.dropped += DROP;
    for (const key of this.#starts.keys()) if (key < this.dropped) this.#starts.delete(key);
  }
}
