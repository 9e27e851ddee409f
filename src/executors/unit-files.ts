/**
 * The unit directory as the container executors keep it: `{unitDir}/stdout` (appended
 * to, never rewritten) and `{unitDir}/exit`, the way the task ended, in the shell
 * executor's format ("code signal", `-` for none). A recorded signal means colony
 * stopped it. After a restart, an output stream read again from its start is appended
 * past what the file already holds (SkipBytes).
 */
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { Transform, type TransformCallback } from "node:stream";
import type { ExecutionResult } from "../core/executor.ts";

/** Drops the first `skip` bytes: what the output file already holds. */
export class SkipBytes extends Transform {
  #skip: number;
  constructor(skip: number) {
    super();
    this.#skip = skip;
  }
  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    if (this.#skip >= chunk.length) {
      this.#skip -= chunk.length;
      return done();
    }
    done(null, this.#skip > 0 ? chunk.subarray(this.#skip) : chunk);
    this.#skip = 0;
  }
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path).catch(() => undefined))?.size ?? 0;
}

export async function readExitRecord(path: string): Promise<ExecutionResult | undefined> {
  try {
    const m = /^(-|\d+) (-|\d+)\s*$/.exec(await readFile(path, "utf8"));
    if (!m) return undefined;
    return { exitCode: m[1] === "-" ? null : Number(m[1]), killed: m[2] !== "-" };
  } catch {
    return undefined;
  }
}

/** Writes the exit record atomically (a reader never sees half a file). */
export async function writeExitRecord(path: string, result: ExecutionResult): Promise<void> {
  const tmp = `${path}.tmp.${process.pid}`;
  const text = `${result.exitCode ?? "-"} ${result.killed ? "15" : "-"}\n`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}
