/**
 * Streams a file that something else is appending to (a task's output file), like
 * `tail -c +N -f` that knows when to stop: with `follow`, the stream stays open and
 * emits bytes as they are appended, and ends once `done()` is true and every byte up
 * to the file's size at that moment was emitted.
 *
 * Many followers of one file (every dashboard tab, CLI `-f` and `work results` on a
 * running task) share ONE fs.watch and one slow safety timer per path, kept in a
 * module-level registry and released with the last follower. Each follower has its own
 * descriptor and offset and reads only while its consumer wants more (backpressure),
 * so a slow consumer neither loses bytes nor holds the others back.
 */
import { watch, type FSWatcher } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { Readable } from "node:stream";

export interface FollowOptions {
  /** Byte offset to start at (default 0). */
  offset?: number;
  /** Keep streaming appended bytes until `done()` (default: end at the current end). */
  follow: boolean;
  /** True once the writer has finished; checked only with `follow`. */
  done?: () => boolean;
  signal?: AbortSignal;
}

// Big reads: a follower of a large output spends its time per chunk (syscalls, HTTP frames),
// and 512 KiB measured ~2x the per-client throughput of 64 KiB on this machine.
const CHUNK = 512 * 1024;
/** Safety net for changes fs.watch does not report (NFS, some container overlays). */
const SAFETY_INTERVAL_MS = 1000;

interface PathWatch {
  followers: Set<FileFollower>;
  watcher: FSWatcher | undefined;
  /**
   * What the watcher watches: 0 the file, 1 its folder (for it to appear; appends show
   * there too), 2 the folder above (for the folder to appear: a task's unit dir is made
   * when it starts), 3 nothing (only the timer).
   */
  level: number;
  timer: NodeJS.Timeout;
}

const watches = new Map<string, PathWatch>();

function wake(key: string): void {
  const w = watches.get(key);
  if (w) for (const f of w.followers) f.wake();
}

/** Watches `key`, else the nearest of its two folders above that exists, for the level below to appear. */
function startWatcher(
  key: string,
  from: number,
): { watcher: FSWatcher | undefined; level: number } {
  const onEvent = () => changed(key);
  const ignore = () => undefined;
  if (from === 0) {
    try {
      return { watcher: watch(key, onEvent).on("error", ignore), level: 0 };
    } catch {
      // not there yet
    }
  }
  let below = key;
  let folder = dirname(key);
  for (let level = 1; level <= 2; level++, below = folder, folder = dirname(folder)) {
    if (level < from || folder === below) continue;
    const name = basename(below);
    try {
      const watcher = watch(folder, (_event, filename) => {
        if (filename === null || filename === name) onEvent();
      });
      return { watcher: watcher.on("error", ignore), level };
    } catch {
      // not there either
    }
  }
  return { watcher: undefined, level: 3 };
}

/**
 * Something changed at or above `key`: once what was missing appeared (the unit dir of a
 * task that just started), the watch moves down to it, so that appends wake followers
 * at once instead of at the next safety tick. Then the followers read.
 */
function changed(key: string): void {
  const w = watches.get(key);
  if (!w) return;
  if (w.level > 1) {
    const next = startWatcher(key, 0);
    if (next.level < w.level) {
      w.watcher?.close();
      w.watcher = next.watcher;
      w.level = next.level;
      w.timer.unref();
    } else {
      next.watcher?.close();
    }
  }
  wake(key);
}

function acquire(key: string, follower: FileFollower): void {
  let w = watches.get(key);
  if (!w) {
    const { watcher, level } = startWatcher(key, 0);
    const timer = setInterval(() => changed(key), SAFETY_INTERVAL_MS);
    // A working watcher keeps the process alive while followers wait; the timer
    // only has to when there is none.
    if (watcher) timer.unref();
    w = { followers: new Set(), watcher, level, timer };
    watches.set(key, w);
  }
  w.followers.add(follower);
}

function release(key: string, follower: FileFollower): void {
  const w = watches.get(key);
  if (!w || !w.followers.delete(follower) || w.followers.size > 0) return;
  watches.delete(key);
  clearInterval(w.timer);
  w.watcher?.close();
}

/** Wakes the followers of `path` now (the writer knows it appended). */
export function notifyFileChanged(path: string): void {
  if (watches.size > 0) wake(resolve(path)); // no follower anywhere: skip resolving the path
}

/** Wakes the followers of `path` so they see that `done()` became true. */
export function notifyDone(path: string): void {
  if (watches.size > 0) wake(resolve(path));
}

/** How many paths are watched (for tests: followers must release their watch). */
export function watchedPathCount(): number {
  return watches.size;
}

class FileFollower extends Readable {
  readonly #key: string;
  readonly #follow: boolean;
  readonly #done: () => boolean;
  #offset: number;
  #fh: FileHandle | undefined;
  #busy = false;
  #waiting = false;
  #wakes = 0;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = () =>
    this.destroy(new DOMException("the output stream was aborted", "AbortError"));

  constructor(path: string, options: FollowOptions) {
    super({ highWaterMark: CHUNK });
    this.#key = resolve(path);
    this.#follow = options.follow;
    this.#done = options.done ?? (() => false);
    this.#offset = options.offset ?? 0;
    this.#signal = options.signal;
    if (this.#signal?.aborted) {
      queueMicrotask(this.#onAbort);
    } else {
      this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    }
    if (this.#follow) acquire(this.#key, this);
  }

  /** Called by the registry when the file may have changed. */
  wake(): void {
    this.#wakes++;
    if (this.#waiting) {
      this.#waiting = false;
      void this.#readOnce();
    }
  }

  override _read(): void {
    void this.#readOnce();
  }

  // One push per _read (or one wait for a wake), as the Readable contract expects.
  async #readOnce(): Promise<void> {
    if (this.#busy || this.destroyed) return;
    this.#busy = true;
    try {
      for (;;) {
        const wakes = this.#wakes;
        const doneBefore = !this.#follow || this.#done();
        if (!this.#fh) {
          try {
            this.#fh = await open(this.#key, "r");
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ENOENT" || !this.#follow) throw err;
          }
        }
        let n = 0;
        let buf: Buffer | undefined;
        if (this.#fh) {
          buf = Buffer.allocUnsafe(CHUNK);
          ({ bytesRead: n } = await this.#fh.read(buf, 0, CHUNK, this.#offset));
        }
        if (this.destroyed) {
          this.#busy = false;
          return;
        }
        if (n > 0 && buf) {
          this.#offset += n;
          this.#busy = false;
          this.push(n === CHUNK ? buf : buf.subarray(0, n));
          return;
        }
        if (doneBefore) {
          this.#busy = false;
          this.push(null);
          return;
        }
        if (this.#wakes !== wakes) continue; // it changed while we read
        this.#busy = false;
        this.#waiting = true;
        return;
      }
    } catch (err) {
      this.#busy = false;
      this.destroy(err as Error);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#signal?.removeEventListener("abort", this.#onAbort);
    if (this.#follow) release(this.#key, this);
    this.#waiting = false;
    const fh = this.#fh;
    this.#fh = undefined;
    if (!fh) return callback(error);
    fh.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}

/** A Readable of `path` from `offset`; see the module comment for `follow` and `done`. */
export function followFile(path: string, options: FollowOptions): Readable {
  return new FileFollower(path, options);
}

/**
 * A task's output file as the engine and every executor's logStream serve it: from
 * `offset`, or with `tail` from its size now. A file never written (a task that printed
 * nothing, or not started) reads as empty when not following; when following, it is
 * waited for.
 */
export async function followOutput(
  path: string,
  options: FollowOptions & { tail?: boolean },
): Promise<Readable> {
  const size = (await stat(path).catch(() => undefined))?.size;
  if (size === undefined && !options.follow) return Readable.from([]);
  const offset = options.tail ? (size ?? 0) : (options.offset ?? 0);
  return new FileFollower(path, { ...options, offset });
}
