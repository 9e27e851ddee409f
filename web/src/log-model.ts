/**
 * The lines of a task's output as they arrive, for the virtualised log view.
 *
 * The text is kept as the chunks it arrived in, with the offset where each line starts
 * in one growing Float64Array: a 50 MB output is about a thousand strings and one array,
 * not a million line strings (which would make the garbage collector pause the page).
 * A line's text is cut out only when it is drawn. The ANSI style each line starts with
 * is recorded on arrival (sparsely: only where it is not plain), so drawing any line
 * needs only that line. Past MAX_LINES the oldest lines are dropped, which bounds memory
 * and the scroll height (browsers cap an element's height at about 33 million pixels).
 */
import { isPlain, PLAIN, styleAfter, type Style } from "./ansi.ts";

export const MAX_LINES = 1_000_000;
const DROP = 100_000;

export class LogModel {
  /** Lines dropped from the front (too many to keep). */
  dropped = 0;
  /** Bytes skipped before the first byte received (a view that started near the end). */
  skippedBytes = 0;
  /** Characters received. */
  chars = 0;
  /** Bytes received (counted by the reader). */
  bytes = 0;
  /** Bumped on every change, for memoisation. */
  version = 0;
  ended = false;

  /** The text as received; chunkAt[i] is the offset of chunks[i] in all the text. */
  #chunks: string[] = [];
  #chunkAt: number[] = [];
  /** starts[k] is where line k (0 = the first kept line) starts; #lines complete lines. */
  #starts = new Float64Array(1024);
  #lines = 0;
  /** Where the unfinished last line starts. */
  #partialAt = 0;
  readonly #styles = new Map<number, Style>();
  #carry: Style = PLAIN;
  /** When starting mid-file, the first (cut) line is left out. */
  #skipFirst: boolean;

  constructor(options: { skippedBytes?: number } = {}) {
    this.skippedBytes = options.skippedBytes ?? 0;
    this.#skipFirst = this.skippedBytes > 0;
  }

  /** Before the first push: the text will start `bytes` into the output (mid-line). */
  skip(bytes: number): void {
    this.skippedBytes = bytes;
    this.#skipFirst = bytes > 0;
  }

  /** Lines shown: the kept complete lines and the unfinished one, if any. */
  get count(): number {
    return this.#lines + (this.chars > this.#partialAt ? 1 : 0);
  }

  push(text: string): void {
    if (!text) return;
    const base = this.chars;
    this.#chunks.push(text);
    this.#chunkAt.push(base);
    this.chars += text.length;
    this.version++;
    let nl = text.indexOf("\n");
    // The next escape in this chunk: found once and moved forward, never searched per line.
    let esc = text.indexOf("\x1b");
    while (nl >= 0) {
      const start = this.#partialAt;
      const end = base + nl; // the line ends here (the newline is not part of it)
      while (esc >= 0 && base + esc < start) esc = text.indexOf("\x1b", esc + 1);
      // A line begun in an earlier chunk is looked at whole (once per chunk at most).
      const escaped = start < base || (esc >= 0 && base + esc < end);
      if (this.#skipFirst) this.#skipFirst = false;
      else this.#add(start, end, escaped);
      this.#partialAt = end + 1;
      nl = text.indexOf("\n", nl + 1);
    }
    if (this.#lines > MAX_LINES) this.#drop();
  }

  end(): void {
    this.ended = true;
    this.version++;
  }

  /** The text of visible line i (0 = the first kept line). */
  line(i: number): string {
    if (i < this.#lines) {
      const start = this.#starts[i]!;
      const next = i + 1 < this.#lines ? this.#starts[i + 1]! : this.#partialAt;
      return this.#text(start, next - 1);
    }
    return this.#text(this.#partialAt, this.chars);
  }

  /** The style visible line i starts with. */
  styleAt(i: number): Style {
    if (i >= this.#lines) return this.#carry;
    return this.#styles.get(i + this.dropped) ?? PLAIN;
  }

  /** The line number (1-based, counting dropped lines) of visible line i. */
  number(i: number): number {
    return this.dropped + i + 1;
  }

  /** Records the line [start, end); `escaped`: it may hold an escape sequence. */
  #add(start: number, end: number, escaped: boolean): void {
    if (this.#lines === this.#starts.length) {
      const grown = new Float64Array(this.#starts.length * 2);
      grown.set(this.#starts);
      this.#starts = grown;
    }
    const n = this.#lines;
    this.#starts[n] = start;
    this.#lines = n + 1;
    if (!isPlain(this.#carry)) this.#styles.set(n + this.dropped, this.#carry);
    if (escaped) this.#carry = styleAfter(this.#carry, this.#text(start, end));
  }

  /** Text from offset `start` to `end` (exclusive), across chunks. */
  #text(start: number, end: number): string {
    if (end <= start) return "";
    let i = this.#chunkIndex(start);
    let out = "";
    let at = start;
    while (at < end && i < this.#chunks.length) {
      const chunk = this.#chunks[i]!;
      const base = this.#chunkAt[i]!;
      const to = Math.min(end, base + chunk.length);
      out += chunk.slice(at - base, to - base);
      at = to;
      i++;
    }
    return out;
  }

  /** The chunk holding offset `at` (binary search). */
  #chunkIndex(at: number): number {
    let lo = 0;
    let hi = this.#chunkAt.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#chunkAt[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  #drop(): void {
    this.#starts.copyWithin(0, DROP, this.#lines);
    this.#lines -= DROP;
    this.dropped += DROP;
    for (const key of this.#styles.keys()) if (key < this.dropped) this.#styles.delete(key);
    // Chunks wholly before the first kept line go.
    const first = this.#starts[0]!;
    const keep = this.#chunkIndex(first);
    if (keep > 0) {
      this.#chunks.splice(0, keep);
      this.#chunkAt.splice(0, keep);
    }
  }
}
