/**
 * Content-addressed blobs in `{data}/artifacts/blobs/{sha256[0..2]}/{sha256}`. Bytes
 * arrive as a stream and are written to a temporary file while their hashes are
 * computed (md5, the seed's challenge md5("WEBDA" + content), sha256), so no file is
 * ever held in memory; the temporary file becomes the blob by an atomic rename, after
 * an fsync, only once the caller has accepted its hashes. Identical content is stored once.
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, existsSync, mkdirSync, rmSync } from "node:fs";
import { open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { ColonyError } from "../core/errors.ts";

export interface BlobHashes {
  size: number;
  md5: string;
  /** md5 of "WEBDA" followed by the content (seed 004's proof of possession). */
  challenge: string;
  sha256: string;
}

/** Bytes written to a temporary file, waiting to be accepted (commit) or dropped (discard). */
export interface PendingBlob extends BlobHashes {
  tmpPath: string;
}

export class BlobTooLargeError extends ColonyError {
  constructor(limit: number) {
    super(
      "COLONY_ARTIFACT_TOO_LARGE",
      `the file is larger than the limit of ${limit} bytes (artifacts.max_size)`,
      {
        status: 413,
      },
    );
  }
}

/** The md5 and challenge of in-memory content (tests and small clients). */
export function seedHashes(content: Buffer | string): { hash: string; challenge: string } {
  return {
    hash: createHash("md5").update(content).digest("hex"),
    challenge: createHash("md5").update("WEBDA").update(content).digest("hex"),
  };
}

export class BlobStore {
  readonly dir: string;
  readonly #tmp: string;

  constructor(dir: string) {
    this.dir = dir;
    this.#tmp = join(dir, "tmp");
    mkdirSync(join(dir, "blobs"), { recursive: true, mode: 0o700 });
    mkdirSync(this.#tmp, { recursive: true, mode: 0o700 });
  }

  path(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.dir, "blobs", sha256.slice(0, 2), sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.path(sha256));
  }

  /** Streams `source` to a temporary file, hashing as it goes; refuses more than `maxBytes`. */
  async receive(
    source: Readable | AsyncIterable<Buffer | string>,
    maxBytes: number,
  ): Promise<PendingBlob> {
    const tmpPath = join(this.#tmp, `${Date.now()}-${randomBytes(8).toString("hex")}`);
    const md5 = createHash("md5");
    const challenge = createHash("md5").update("WEBDA");
    const sha256 = createHash("sha256");
    const out = createWriteStream(tmpPath, { mode: 0o600 });
    const finished = new Promise<void>((resolve, reject) => {
      out.once("finish", resolve);
      out.once("error", reject);
    });
    // Observed below, or dropped when the loop fails first: never an unhandled rejection.
    finished.catch(() => undefined);
    let size = 0;
    try {
      for await (const piece of source) {
        const chunk = typeof piece === "string" ? Buffer.from(piece) : piece;
        size += chunk.length;
        if (size > maxBytes) throw new BlobTooLargeError(maxBytes);
        for (const h of [md5, challenge, sha256] as Hash[]) h.update(chunk);
        // A write error (ENOSPC) ends the wait for 'drain' too: once() rejects on 'error'.
        if (!out.write(chunk)) await once(out, "drain");
      }
      out.end();
      await finished;
    } catch (error) {
      out.destroy();
      rmSync(tmpPath, { force: true });
      if ((error as NodeJS.ErrnoException).code === "ENOSPC") {
        throw new ColonyError(
          "COLONY_DISK_FULL",
          `no space left on the disk of ${this.dir} after ${size} bytes of the file; ` +
            `nothing was kept: free space and send it again`,
          { status: 507, cause: error },
        );
      }
      throw error;
    }
    return {
      tmpPath,
      size,
      md5: md5.digest("hex"),
      challenge: challenge.digest("hex"),
      sha256: sha256.digest("hex"),
    };
  }

  /** Makes a received file the blob of its sha256 (durably); identical content is kept once. */
  async commit(pending: PendingBlob): Promise<string> {
    const target = this.path(pending.sha256);
    if (existsSync(target)) {
      await rm(pending.tmpPath, { force: true });
      return target;
    }
    const fh = await open(pending.tmpPath, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    mkdirSync(join(this.dir, "blobs", pending.sha256.slice(0, 2)), {
      recursive: true,
      mode: 0o700,
    });
    await rename(pending.tmpPath, target);
    return target;
  }

  async discard(pending: PendingBlob): Promise<void> {
    await rm(pending.tmpPath, { force: true });
  }

  /** Stores a file from disk (task artifacts): streamed, hashed, committed. */
  async ingestFile(path: string, maxBytes: number): Promise<BlobHashes> {
    const pending = await this.receive(createReadStream(path), maxBytes);
    await this.commit(pending);
    return pending;
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.path(sha256), range);
  }

  async size(sha256: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(sha256))).size;
    } catch {
      return undefined;
    }
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.path(sha256), { force: true });
  }

  /** Temporary files left by a crash in the middle of an upload. */
  async cleanTemporary(olderThanMs = 0): Promise<number> {
    let removed = 0;
    const before = Date.now() - olderThanMs;
    for (const name of await readdir(this.#tmp).catch(() => [] as string[])) {
      const file = join(this.#tmp, name);
      const info = await stat(file).catch(() => undefined);
      if (info && info.mtimeMs <= before) {
        await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }
}
