/**
 * Task output handling: `::set-output name=K::V` lines give values to later tasks, and
 * secret values are masked in every output a user can see (SPEC section 2). Both work on
 * streams in bounded memory, so a task printing gigabytes costs no more than a small one.
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { Transform } from "node:stream";
import type { TransformCallback } from "node:stream";

const SET_OUTPUT = /^[ \t]*::set-output name=([^\s:]+)::([^\n]*)$/;
const PREFIX = Buffer.from("::set-output ");
/** Lines longer than this are skipped whole (an output value is meant to be small). */
export const MAX_OUTPUT_LINE_BYTES = 64 * 1024;

function applyLine(line: string, into: Record<string, string>): void {
  const m = SET_OUTPUT.exec(line.endsWith("\r") ? line.slice(0, -1) : line);
  if (m) into[m[1] as string] = m[2] as string;
}

/** Every `::set-output name=K::V` line of `text`; the last one for a name wins. */
export function parseSetOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const line of text.split("\n")) {
    if (
      line.length * 3 <= MAX_OUTPUT_LINE_BYTES ||
      Buffer.byteLength(line) <= MAX_OUTPUT_LINE_BYTES
    )
      applyLine(line, out);
  }
  return { ...out };
}

/**
 * parseSetOutputs over a byte stream: lines may be split across chunks (even inside a
 * UTF-8 character); a line is buffered only while it can still be a set-output line
 * under MAX_OUTPUT_LINE_BYTES, so memory stays bounded.
 */
export class SetOutputScanner {
  readonly #outputs: Record<string, string> = Object.create(null) as Record<string, string>;
  #parts: Buffer[] = [];
  #length = 0;
  /** True from the moment the current line can no longer be a (short enough) set-output line. */
  #skipping = false;
  /** The current line starts with the set-output prefix: no more checks until its end. */
  #prefixSeen = false;

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.#skipping) this.#append(chunk.subarray(start, end));
      if (nl === -1) return;
      this.#endLine();
      start = nl + 1;
    }
  }

  /** The outputs so far, counting a last line that has no newline yet. */
  result(): Record<string, string> {
    const out = { ...this.#outputs };
    if (!this.#skipping && this.#length > 0)
      applyLine(Buffer.concat(this.#parts).toString("utf8"), out);
    return out;
  }

  #append(piece: Buffer): void {
    if (piece.length === 0) return;
    this.#parts.push(Buffer.from(piece));
    this.#length += piece.length;
    if (this.#length > MAX_OUTPUT_LINE_BYTES) return this.#skip();
    if (this.#prefixSeen) return;
    const head = Buffer.concat(this.#parts);
    this.#parts = [head];
    let i = 0;
    while (i < head.length && (head[i] === 32 || head[i] === 9)) i++;
    const rest = head.subarray(i, i + PREFIX.length);
    if (!PREFIX.subarray(0, rest.length).equals(rest)) return this.#skip();
    this.#prefixSeen = rest.length === PREFIX.length;
  }

  #skip(): void {
    this.#skipping = true;
    this.#parts = [];
    this.#length = 0;
  }

  #endLine(): void {
    if (!this.#skipping && this.#length > 0)
      applyLine(Buffer.concat(this.#parts).toString("utf8"), this.#outputs);
    this.#parts = [];
    this.#length = 0;
    this.#skipping = false;
    this.#prefixSeen = false;
  }
}

const MASK = Buffer.from("***");

function needlesOf(secrets: readonly string[]): Buffer[] {
  const unique = new Set(secrets.filter((s) => typeof s === "string" && s.length >= 3));
  return [...unique].map((s) => Buffer.from(s, "utf8")).sort((a, b) => b.length - a.length);
}

/** State of a masking pass between chunks. */
interface MaskState {
  pending: Buffer;
  /** Leading bytes of `pending` known to belong to a secret found in the previous pass. */
  forced: number;
  /** The last byte written was part of a masked run (so a continuing run adds no second ***). */
  inMask: boolean;
}

/**
 * Masks `data = pending + chunk`, writing out everything except the last maxLen-1 bytes
 * (unless `final`), which may be the start of a secret completed by the next chunk. Every
 * byte covered by an occurrence of a secret is masked; a run of covered bytes becomes one
 * `***`, so the output does not depend on how the input was chunked.
 */
function maskPass(needles: Buffer[], state: MaskState, chunk: Buffer, final: boolean): Buffer {
  const data = state.pending.length === 0 ? chunk : Buffer.concat([state.pending, chunk]);
  const maxLen = needles[0]?.length ?? 1;
  const intervals: Array<[number, number]> = state.forced > 0 ? [[0, state.forced]] : [];
  for (const needle of needles) {
    for (let at = data.indexOf(needle); at !== -1; at = data.indexOf(needle, at + 1)) {
      intervals.push([at, at + needle.length]);
    }
  }
  intervals.sort((a, b) => a[0] - b[0]);
  const cut = final ? data.length : Math.max(0, data.length - (maxLen - 1));
  const out: Buffer[] = [];
  let pos = 0;
  let coveredTo = 0;
  for (const [start, end] of intervals) {
    if (start >= cut) break;
    if (start > coveredTo && start > pos) {
      out.push(data.subarray(pos, start));
      state.inMask = false;
      pos = start;
    }
    if (end > coveredTo) coveredTo = end;
    if (!state.inMask) out.push(MASK);
    state.inMask = true;
    pos = Math.min(Math.max(pos, coveredTo), cut);
  }
  if (pos < cut) {
    out.push(data.subarray(pos, cut));
    state.inMask = false;
  }
  state.forced = Math.max(0, coveredTo - cut);
  state.pending = Buffer.from(data.subarray(cut));
  return out.length === 1 ? Buffer.from(out[0] as Buffer) : Buffer.concat(out);
}

/**
 * A Transform replacing every occurrence of each secret (3 characters or more) with `***`,
 * also when a secret is split across chunks. Holds back at most the longest secret's
 * length minus one byte, and flushes it at the end.
 */
export function createMaskTransform(secrets: string[]): Transform {
  const needles = needlesOf(secrets);
  if (needles.length === 0) {
    return new Transform({
      transform(chunk: Buffer, _enc, done: TransformCallback) {
        done(null, chunk);
      },
    });
  }
  const state: MaskState = { pending: Buffer.alloc(0), forced: 0, inMask: false };
  return new Transform({
    transform(chunk: Buffer | string, _enc, done: TransformCallback) {
      const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      const out = maskPass(needles, state, bytes, false);
      done(null, out.length > 0 ? out : undefined);
    },
    flush(done: TransformCallback) {
      const out = maskPass(needles, state, Buffer.alloc(0), true);
      done(null, out.length > 0 ? out : undefined);
    },
  });
}

/** `text` with every secret (3 characters or more) replaced by `***`. */
export function maskText(text: string, secrets: string[]): string {
  const needles = needlesOf(secrets);
  if (needles.length === 0) return text;
  const state: MaskState = { pending: Buffer.alloc(0), forced: 0, inMask: false };
  return maskPass(needles, state, Buffer.from(text, "utf8"), true).toString("utf8");
}

/**
 * A line of colony's own (`colony: ...`) appended to a task's output file, where its user
 * looks first. Best effort: the task's result says what matters.
 */
export function noteInOutput(outPath: string, line: string): void {
  try {
    mkdirSync(dirname(outPath), { recursive: true, mode: 0o700 });
    appendFileSync(outPath, `colony: ${line}\n`, { mode: 0o600 });
  } catch {
    // the output file is best effort here
  }
}
