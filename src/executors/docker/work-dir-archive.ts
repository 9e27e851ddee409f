/**
 * A task's work dir between the host and its container, as the tar streams of the
 * Engine API's archive endpoints (PUT and GET /containers/{id}/archive): they work with
 * a remote engine too, and they merge into the image's filesystem instead of hiding it
 * as a bind mount would.
 *
 * - packWorkDir: the regular files and directories under a host directory, with their
 *   modes, named under the container path; read from disk as the archive is sent.
 * - extractArchive: what the engine sends back, written under a host directory as it
 *   arrives. Only regular files and directories are written, never outside the target:
 *   absolute names, names that climb out with `..`, symlinks, hard links, devices and
 *   fifos are skipped and reported.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, lstat, mkdir, readdir, realpath, unlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  extract as tarExtract,
  pack as tarPack,
  type Extract,
  type Header,
  type Pack,
} from "tar-stream";

type Headers = Partial<Header> & Pick<Header, "name">;
type Entry = Extract extends AsyncIterable<infer S> ? S : never;

/** Mode of a work dir colony creates in a container (what the engine gives a WorkingDir). */
export const CREATED_WORK_DIR_MODE = 0o755;

export interface PackOptions {
  /**
   * Adds the container dir itself as a directory entry (mode CREATED_WORK_DIR_MODE), so
   * that it exists even when the host dir is empty. Leave it out when the container has
   * the directory (the image's, or the WorkingDir the engine made at create): the engine
   * would reset its owner and mode (a /tmp would lose its 1777). Missing parents are
   * created by the engine (root, 0755).
   */
  withRoot: boolean;
  /** Host entries that are not sent (symlinks...), as "relative/path (kind)". */
  skipped?: string[];
}

function kindOf(st: {
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "device";
  return "not a file";
}

/** Resolves when `emitter` emits `event`; rejects when the pack is closed first. */
function until(emitter: NodeJS.EventEmitter, event: string, pack: Pack): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const off = () => {
      emitter.off(event, onEvent);
      pack.off("close", onClose);
    };
    const onEvent = () => {
      off();
      resolve();
    };
    const onClose = () => {
      off();
      reject(new Error("the archive stream was closed before it was complete"));
    };
    emitter.on(event, onEvent);
    pack.on("close", onClose);
  });
}

/** Adds one entry to the pack: a directory, or a file streamed from disk. */
async function addEntry(pack: Pack, header: Headers, file?: string): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    const entry = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    if (file === undefined) return;
    void (async () => {
      try {
        for await (const chunk of createReadStream(file)) {
          if (!entry.write(chunk as Buffer)) await until(entry, "drain", pack);
        }
        entry.end(undefined);
      } catch (err) {
        entry.destroy(err as Error);
        reject(err as Error);
      }
    })();
  });
  await done;
}

/**
 * A tar stream of `hostDir`'s regular files and directories (recursively, modes kept,
 * owned by root) named under `containerDir`, for PUT /containers/{id}/archive?path=/.
 */
export function packWorkDir(hostDir: string, containerDir: string, options: PackOptions): Readable {
  const pack = tarPack();
  const prefix = containerDir.replace(/^\/+/, "").replace(/\/+$/, "");
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      const full = join(dir, name);
      const relName = rel ? `${rel}/${name}` : name;
      const st = await lstat(full);
      const common = { mode: st.mode & 0o777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        await addEntry(pack, { ...common, name: `${prefix}/${relName}/`, type: "directory" });
        await walk(full, relName);
      } else if (st.isFile()) {
        await addEntry(
          pack,
          { ...common, name: `${prefix}/${relName}`, type: "file", size: st.size },
          full,
        );
      } else {
        options.skipped?.push(`${relName} (${kindOf(st)})`);
      }
    }
  };
  void (async () => {
    if (options.withRoot) {
      await addEntry(pack, {
        name: `${prefix}/`,
        type: "directory",
        mode: CREATED_WORK_DIR_MODE,
        uid: 0,
        gid: 0,
      });
    }
    await walk(hostDir, "");
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  // A node stream (tar-stream's are streamx streams) for node:http and pipeline.
  return Readable.from(pack, { objectMode: false });
}

export interface ExtractOptions {
  /** Leading name components to drop (1 for GET archive: it names entries after the dir). */
  strip?: number;
}

export interface ExtractReport {
  files: number;
  directories: number;
  /** Entries not written, as "name (why)". */
  skipped: string[];
}

function printable(name: string): string {
  // eslint-disable-next-line no-control-regex
  return name.replace(/[\u0000-\u001f\u007f]/g, "?");
}

/**
 * Creates `parts` under `root` one directory at a time; false when one of them is
 * there as something else (a symlink is never followed out of root).
 */
async function makeDirs(root: string, parts: string[]): Promise<boolean> {
  let path = root;
  for (const part of parts) {
    path = join(path, part);
    const st = await lstat(path).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) return false;
    await mkdir(path, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    if (!(await lstat(path)).isDirectory()) return false;
  }
  return true;
}

/**
 * Writes a tar stream under `targetDir` as it arrives: regular files (mode kept, no
 * special bits) and directories only, never outside `targetDir`. Everything else is
 * read past and listed in `skipped`. Rejects on a broken stream or a write that fails.
 */
export async function extractArchive(
  source: Readable,
  targetDir: string,
  options: ExtractOptions = {},
): Promise<ExtractReport> {
  const strip = options.strip ?? 0;
  const report: ExtractReport = { files: 0, directories: 0, skipped: [] };
  await mkdir(targetDir, { recursive: true });
  const root = await realpath(targetDir);
  const ex = tarExtract();
  source.on("error", (err) => ex.destroy(err));
  source.pipe(ex as unknown as NodeJS.WritableStream);
  const skip = (name: string, why: string) => report.skipped.push(`${printable(name)} (${why})`);

  try {
    for await (const entry of ex) await writeEntry(entry);
  } catch (err) {
    source.destroy(); // nothing more is read: the engine's connection goes too
    throw err;
  }
  return report;

  async function writeEntry(entry: Entry): Promise<void> {
    const { name, type } = entry.header;
    const isFile = type === "file" || type === "contiguous-file" || type === undefined;
    const isDir = type === "directory";
    try {
      const parts = isFile || isDir ? placeOf(name) : "not a file or directory";
      if (typeof parts === "string") {
        skip(name, type === "link" ? "hard link" : isFile || isDir ? parts : (type ?? parts));
      } else if (parts.length === 0) {
        // The directory itself (targetDir); a file in its place is not one of its files.
        if (!isDir) skip(name, "outside the directory");
      } else if (!(await makeDirs(root, isDir ? parts : parts.slice(0, -1)))) {
        skip(name, "a path on the way is not a directory");
      } else {
        const path = join(root, ...parts);
        const mode = (entry.header.mode ?? (isDir ? 0o755 : 0o644)) & 0o777;
        if (isDir) {
          // Kept as it was, but always usable by colony (to write into and read from).
          await chmod(path, mode | 0o700);
          report.directories++;
        } else {
          const there = await lstat(path).catch(() => undefined);
          if (there?.isDirectory()) {
            skip(name, "a directory of that name is already there");
          } else {
            // Never written through: a non-file in the way is replaced, not followed.
            if (there && !there.isFile()) await unlink(path);
            await pipeline(
              Readable.from(entry, { objectMode: false }),
              createWriteStream(path, { mode: mode | 0o600 }),
            );
            await chmod(path, mode | 0o600);
            report.files++;
          }
        }
      }
    } finally {
      // Whatever was not written is read past, so the next entry comes.
      entry.resume();
    }
  }

  /** The name's components under targetDir (first `strip` dropped), or why it has none. */
  function placeOf(name: string): string[] | string {
    if (name.startsWith("/")) return "absolute path";
    const normal = posix.normalize(name);
    if (normal === ".." || normal.startsWith("../")) return "outside the directory";
    const parts = normal.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) return "outside the directory";
    return parts.slice(strip);
  }
}
