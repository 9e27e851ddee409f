/**
 * The artifact store: blobs on disk (blob-store.ts), metadata in the store, attached to
 * job requests and task executions. Files arrive three ways: the job hook's two-step
 * upload (seed 004: announce the hashes, then PUT the bytes, or nothing when that
 * content is already stored and the challenge proves the caller has it), a task's
 * `artifacts: {paths}` collected after it ran, and the library. They leave through
 * signed download URLs, a task's `dependencies` (copied into its working directory
 * before it starts) and the REST API. Expired artifacts are swept; a blob goes when no
 * artifact uses it any more.
 */
import {
  createHmac,
  createSecretKey,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from "node:crypto";
import { createWriteStream, mkdirSync, statSync } from "node:fs";
import { chmod, glob, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, normalize, relative, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ColonyError, NotFoundError, ValidationError } from "../core/errors.ts";
import type { ArtifactDownload } from "../core/executor.ts";
import type { Artifact } from "../store/async-action-store.ts";
import type { Store } from "../store/store.ts";
import { BlobStore } from "./blob-store.ts";

/** The only `{store}` colony knows. */
export const ARTIFACT_STORE = "artifacts";
/** The property a task's `artifacts: {paths}` files are stored under. */
export const TASK_ARTIFACTS_PROPERTY = "artifacts";

export interface ArtifactServiceOptions {
  store: Store;
  dataDir: string;
  /** Signs download URLs (derived from the data dir's secret key: they survive restarts). */
  urlKey: Buffer;
  /** The data dir's id (core/disk.ts), recorded on every artifact stored here. */
  serverId?: string;
  /** Default lifetime of an artifact (default 30 days; 0 keeps them forever). */
  expiresAfterMs?: number;
  /** Largest file accepted (default 1 GiB). */
  maxBytes?: number;
  /** How long an announced upload waits for its bytes (default 15 minutes). */
  uploadTtlMs?: number;
  /** How long a download URL works (default 1 hour). */
  downloadTtlMs?: number;
  /** How often expired artifacts are swept (default 10 minutes). */
  sweepEveryMs?: number;
  log?: (message: string) => void;
  now?: () => number;
}

/** Step 1 of an upload: PUT {JOB_HOOK}/upload/{store}/{uuid}/{property}. */
export interface UploadAnnouncement {
  store: string;
  uuid: string;
  property: string;
  hash: string;
  challenge: string;
  metadata: Record<string, unknown>;
}

/** What an artifact is attached to. */
export interface ArtifactOwner {
  jobRequestId?: number;
  taskExecutionId?: string;
  taskType?: string;
  /** Overrides the default lifetime (a task's artifacts.expires_after). */
  expiresAfterMs?: number;
}

export type UploadAnswer =
  { done: true; md5: string } | { done: false; method: "PUT"; url: string; md5: string };

/** What GET {JOB_HOOK}/download/... answers (seed 004). */
export interface DownloadAnswer {
  Location: string;
  Map: {
    hash: string;
    size: number;
    mimetype: string;
    name: string;
    metadata: Record<string, unknown>;
  };
}

interface PendingUpload extends UploadAnnouncement, ArtifactOwner {
  expiresAt: number;
}

const MAX_PENDING_UPLOADS = 10_000;

function md5Base64(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64");
}

function stringOf(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

/** A stored name as a relative path, or undefined when it would leave its directory. */
function safeName(name: string): string | undefined {
  const clean = normalize(name).replace(/^(\.\/)+/, "");
  if (clean === "" || clean === "." || isAbsolute(clean) || clean.split(sep).includes("..")) {
    return undefined;
  }
  return clean;
}

/** A stored name as a path inside `dir`, or undefined when it would leave it. */
export function inside(dir: string, name: string): string | undefined {
  const clean = safeName(name);
  return clean === undefined ? undefined : join(dir, clean);
}

/**
 * The files `paths` (globs or directories, relative to `workDir`) match, sorted, and the
 * patterns that matched nothing. A pattern that leaves workDir is refused.
 */
export async function matchArtifactFiles(
  workDir: string,
  paths: string[],
): Promise<{ files: string[]; unmatched: string[] }> {
  const files = new Set<string>();
  const unmatched: string[] = [];
  for (const pattern of paths) {
    if (isAbsolute(pattern) || pattern.split(/[\\/]/).includes("..")) {
      throw new ValidationError(
        `artifacts.paths: '${pattern}' leaves the task's working directory; give paths relative to it`,
      );
    }
    let matched = false;
    for await (const entry of glob(pattern, { cwd: workDir })) {
      const full = join(workDir, entry);
      const info = await stat(full).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) {
        for await (const inner of glob("**/*", { cwd: full })) {
          const file = join(full, inner);
          if (statSync(file, { throwIfNoEntry: false })?.isFile()) files.add(file);
        }
      } else if (info.isFile()) files.add(full);
      matched = true;
    }
    if (!matched) unmatched.push(pattern);
  }
  return { files: [...files].sort(), unmatched };
}

/**
 * Writes a fetched artifact's bytes to `target` (its directories made), mode 0755 when
 * it was executable, else 0644, whatever an earlier file there had.
 */
export async function placeArtifact(
  target: string,
  bytes: Readable,
  executable: boolean,
  signal?: AbortSignal,
): Promise<void> {
  mkdirSync(dirname(target), { recursive: true });
  const mode = executable ? 0o755 : 0o644;
  await pipeline(bytes, createWriteStream(target, { mode }), ...(signal ? [{ signal }] : []));
  await chmod(target, mode); // a file of an earlier dependency kept its own
}

/** A file's name as an artifact: its path relative to the work dir, with `/`. */
export function artifactName(workDir: string, file: string): string {
  return relative(workDir, file).split(sep).join("/");
}

export class ArtifactService {
  readonly blobs: BlobStore;
  readonly #o: Required<Omit<ArtifactServiceOptions, "log" | "serverId">> &
    Pick<ArtifactServiceOptions, "log" | "serverId">;
  readonly #uploads = new Map<string, PendingUpload>();
  #sweeper: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;
  #remote: ((artifact: Artifact) => Promise<Readable>) | undefined;
  /** urlKey prepared once (an HMAC with a Buffer key re-imports it on every call). */
  readonly #urlKey: KeyObject;

  constructor(options: ArtifactServiceOptions) {
    this.#o = {
      expiresAfterMs: 30 * 24 * 3600_000,
      maxBytes: 1024 ** 3,
      uploadTtlMs: 15 * 60_000,
      downloadTtlMs: 3600_000,
      sweepEveryMs: 10 * 60_000,
      now: Date.now,
      ...options,
    };
    this.blobs = new BlobStore(join(options.dataDir, "artifacts"));
    this.#urlKey = createSecretKey(options.urlKey);
  }

  get maxBytes(): number {
    return this.#o.maxBytes;
  }

  // -- the hook's upload ----------------------------------------------------------------

  /**
   * Step 1 of an upload. When a stored file has this md5 and challenge (the caller
   * proves it holds the content), it is attached under (store, uuid, property) at once:
   * `{done: true}`. Else a one-time URL to PUT the bytes to.
   */
  async announce(
    a: UploadAnnouncement,
    owner: ArtifactOwner,
    baseUrl: string,
  ): Promise<UploadAnswer> {
    if (a.store !== ARTIFACT_STORE)
      throw new NotFoundError("store", a.store, `use '${ARTIFACT_STORE}'`);
    if (!/^[0-9a-fA-F]{32}$/.test(a.hash) || !/^[0-9a-fA-F]{32}$/.test(a.challenge)) {
      throw new ValidationError("body.hash and body.challenge must be md5 digests (32 hex digits)");
    }
    const hash = a.hash.toLowerCase();
    const challenge = a.challenge.toLowerCase();
    const known = await this.#o.store.asyncActions.findArtifactByHashes(hash, challenge);
    if (known && this.blobs.has(known.sha256)) {
      await this.#attach({ ...a, hash, challenge }, owner, {
        size: known.size,
        md5: known.md5,
        challenge: known.challenge,
        sha256: known.sha256,
        mimetype: stringOf(a.metadata.mimetype) ?? known.mimetype,
      });
      return { done: true, md5: md5Base64(hash) };
    }
    this.#expireUploads();
    if (this.#uploads.size >= MAX_PENDING_UPLOADS) {
      throw new ColonyError(
        "COLONY_TOO_MANY_UPLOADS",
        "too many uploads are waiting for their bytes; try again later",
        {
          status: 503,
          retryable: true,
        },
      );
    }
    const id = randomBytes(24).toString("base64url");
    this.#uploads.set(id, {
      ...a,
      hash,
      challenge,
      ...owner,
      expiresAt: this.#o.now() + this.#o.uploadTtlMs,
    });
    return {
      done: false,
      method: "PUT",
      url: `${baseUrl}/async/blobs/${id}`,
      md5: md5Base64(hash),
    };
  }

  /**
   * Step 2: the bytes of an announced upload, streamed to disk. Refused (400, nothing
   * kept) when they do not have the announced md5 and challenge.
   */
  async receive(
    uploadId: string,
    body: Readable | AsyncIterable<Buffer>,
    contentType?: string,
  ): Promise<Artifact> {
    this.#expireUploads();
    const upload = this.#uploads.get(uploadId);
    if (!upload) {
      throw new NotFoundError(
        "upload",
        uploadId.slice(0, 8) + "…",
        "announce it again with PUT {JOB_HOOK}/upload/...",
      );
    }
    // One use: a second PUT to the same URL is refused while the first one runs.
    this.#uploads.delete(uploadId);
    const pending = await this.blobs.receive(body, this.#o.maxBytes);
    if (pending.md5 !== upload.hash || pending.challenge !== upload.challenge) {
      await this.blobs.discard(pending);
      throw new ColonyError(
        "COLONY_ARTIFACT_HASH_MISMATCH",
        `the bytes do not match the announced ${pending.md5 !== upload.hash ? "hash" : "challenge"}; nothing was stored`,
        { status: 400 },
      );
    }
    await this.blobs.commit(pending);
    const mimetype =
      stringOf(upload.metadata.mimetype) ??
      (contentType && !/^application\/x-www-form-urlencoded/.test(contentType)
        ? contentType
        : undefined);
    return this.#attach(upload, upload, { ...pending, mimetype });
  }

  async #attach(
    a: UploadAnnouncement,
    owner: ArtifactOwner,
    blob: { size: number; md5: string; challenge: string; sha256: string; mimetype?: string },
  ): Promise<Artifact> {
    const name = stringOf(a.metadata.name) ?? stringOf(a.metadata.filename) ?? a.property;
    const { artifact } = await this.#o.store.asyncActions.addArtifact(
      {
        store: a.store,
        ownerId: a.uuid,
        property: a.property,
        ...this.#attachment(owner),
        name,
        mimetype: blob.mimetype ?? "application/octet-stream",
        size: blob.size,
        md5: blob.md5,
        challenge: blob.challenge,
        sha256: blob.sha256,
        metadata: a.metadata,
        server: this.#o.serverId,
      },
      { dedupe: true },
    );
    return artifact;
  }

  #attachment(
    owner: ArtifactOwner,
  ): Pick<Artifact, "jobRequestId" | "taskExecutionId" | "taskType" | "expiresAt"> {
    const out: Pick<Artifact, "jobRequestId" | "taskExecutionId" | "taskType" | "expiresAt"> = {};
    if (owner.jobRequestId !== undefined) out.jobRequestId = owner.jobRequestId;
    if (owner.taskExecutionId !== undefined) out.taskExecutionId = owner.taskExecutionId;
    if (owner.taskType !== undefined) out.taskType = owner.taskType;
    const ttl = owner.expiresAfterMs ?? this.#o.expiresAfterMs;
    if (ttl > 0) out.expiresAt = new Date(this.#o.now() + ttl);
    return out;
  }

  #expireUploads(): void {
    const now = this.#o.now();
    for (const [id, u] of this.#uploads) if (u.expiresAt <= now) this.#uploads.delete(id);
  }

  // -- downloads ------------------------------------------------------------------------

  /** GET {JOB_HOOK}/download/{store}/{uuid}/{property}/{index}. */
  async locate(
    store: string,
    uuid: string,
    property: string,
    index: number,
    baseUrl: string,
  ): Promise<DownloadAnswer> {
    if (store !== ARTIFACT_STORE)
      throw new NotFoundError("store", store, `use '${ARTIFACT_STORE}'`);
    const artifact = await this.#o.store.asyncActions.getArtifactAt(store, uuid, property, index);
    if (!artifact) throw new NotFoundError("artifact", `${store}/${uuid}/${property}/${index}`);
    return {
      Location: this.downloadUrl(baseUrl, artifact.id),
      Map: {
        hash: artifact.md5,
        size: artifact.size,
        mimetype: artifact.mimetype,
        name: artifact.name,
        metadata: artifact.metadata,
      },
    };
  }

  /** A URL that serves the artifact's bytes without credentials, for downloadTtlMs. */
  downloadUrl(baseUrl: string, artifactId: string): string {
    const expires = this.#o.now() + this.#o.downloadTtlMs;
    return `${baseUrl}/async/blobs/${artifactId}?expires=${expires}&sig=${this.#sign(artifactId, expires)}`;
  }

  #sign(artifactId: string, expires: number): string {
    return createHmac("sha256", this.#urlKey).update(`${artifactId}.${expires}`).digest("hex");
  }

  /** The artifact a signed URL names; 403 for a bad or expired signature. */
  async signed(
    artifactId: string,
    expires: string | undefined,
    sig: string | undefined,
  ): Promise<Artifact> {
    const refuse = (why: string) =>
      new ColonyError("COLONY_BAD_DOWNLOAD_URL", `${why}; ask the hook for a new download URL`, {
        status: 403,
      });
    if (!expires || !sig || !/^\d{1,16}$/.test(expires) || !/^[0-9a-f]{64}$/.test(sig)) {
      throw refuse("the download URL is not signed");
    }
    const expected = Buffer.from(this.#sign(artifactId, Number(expires)));
    if (!timingSafeEqual(expected, Buffer.from(sig)))
      throw refuse("the download URL's signature is wrong");
    if (Number(expires) < this.#o.now()) throw refuse("the download URL expired");
    return this.get(artifactId);
  }

  async get(artifactId: string): Promise<Artifact> {
    const artifact = await this.#o.store.asyncActions.getArtifact(artifactId);
    if (!artifact) throw new NotFoundError("artifact", artifactId);
    return artifact;
  }

  /**
   * The artifact's bytes: from this data dir, or, for an artifact another server of the
   * store holds, fetched from that server (useRemote; the server's relay) unless
   * `elsewhere` is false (a relayed request: it must not go round). 404 when its blob
   * is gone.
   */
  async open(artifact: Artifact, options: { elsewhere?: boolean } = {}): Promise<Readable> {
    if (this.blobs.has(artifact.sha256)) return this.blobs.read(artifact.sha256);
    const remote = options.elsewhere === false ? undefined : this.#remote;
    if (artifact.server !== undefined && artifact.server !== this.#o.serverId && remote) {
      return remote(artifact);
    }
    throw new NotFoundError("artifact", artifact.id, "its content is no longer stored");
  }

  /** How to fetch the bytes of an artifact another server holds (set by the server). */
  useRemote(fetch: (artifact: Artifact) => Promise<Readable>): void {
    this.#remote = fetch;
  }

  // -- task artifacts and dependencies ----------------------------------------------------

  /**
   * After a task: stores every file matching `paths` (globs or directories, relative to
   * `workDir`) as an artifact of the execution, named by its path relative to workDir.
   * Returns them, and what matched nothing (the caller says so in the task's output).
   */
  async collect(input: {
    workDir: string;
    paths: string[];
    owner: ArtifactOwner & { taskExecutionId: string };
  }): Promise<{ stored: Artifact[]; unmatched: string[] }> {
    const { files, unmatched } = await matchArtifactFiles(input.workDir, input.paths);
    const stored: Artifact[] = [];
    for (const file of files) {
      const executable = ((await stat(file)).mode & 0o111) !== 0;
      const blob = await this.blobs.ingestFile(file, this.#o.maxBytes);
      const name = artifactName(input.workDir, file);
      const { artifact } = await this.#o.store.asyncActions.addArtifact({
        store: ARTIFACT_STORE,
        ownerId: input.owner.taskExecutionId,
        property: TASK_ARTIFACTS_PROPERTY,
        ...this.#attachment(input.owner),
        name,
        mimetype: "application/octet-stream",
        ...blob,
        // Whether it was executable: fetch makes it executable again (a built tool runs).
        metadata: { path: name, ...(executable ? { executable: true } : {}) },
        server: this.#o.serverId,
      });
      stored.push(artifact);
    }
    return { stored, unmatched };
  }

  /**
   * Before a task: copies the artifacts of the given executions into `workDir` under
   * their names (later ones win on a clash), mode 0755 when they were executable, else
   * 0644. Returns how many files were written.
   */
  async fetch(executionIds: string[], workDir: string): Promise<number> {
    let written = 0;
    for (const id of executionIds) {
      await this.#eachArtifact(id, async (artifact) => {
        const target = inside(workDir, artifact.name) ?? join(workDir, artifact.md5);
        await placeArtifact(
          target,
          await this.open(artifact),
          artifact.metadata["executable"] === true,
        );
        written++;
      });
    }
    return written;
  }

  /**
   * What fetch() would write, as signed URLs, for an executor that fetches the files
   * itself on another machine (ExecutionRequest.artifactDownloads).
   */
  async downloads(executionIds: string[], baseUrl: string): Promise<ArtifactDownload[]> {
    const out: ArtifactDownload[] = [];
    for (const id of executionIds) {
      await this.#eachArtifact(id, (artifact) => {
        out.push({
          name: safeName(artifact.name) ?? artifact.md5,
          url: this.downloadUrl(baseUrl, artifact.id),
          executable: artifact.metadata["executable"] === true,
        });
      });
    }
    return out;
  }

  /** Every artifact of an execution, oldest first. */
  async #eachArtifact(executionId: string, each: (artifact: Artifact) => void | Promise<void>) {
    let before: number | undefined;
    do {
      const page = await this.#o.store.asyncActions.listArtifacts({
        taskExecutionId: executionId,
        limit: 500,
        before,
      });
      for (const artifact of page.items.reverse()) await each(artifact);
      before = page.nextCursor;
    } while (before !== undefined);
  }

  // -- retention --------------------------------------------------------------------------

  /** Deletes expired artifacts, then the blobs no artifact uses any more. */
  async sweep(): Promise<number> {
    this.#sweeping ??= (async () => {
      let removed = 0;
      for (;;) {
        // Only the artifacts whose blobs are here: another server removes its own.
        const gone = await this.#o.store.asyncActions.deleteExpiredArtifacts(
          new Date(this.#o.now()),
          500,
          this.#o.serverId,
        );
        removed += gone.length;
        for (const sha256 of new Set(gone.map((a) => a.sha256))) {
          const { asyncActions } = this.#o.store;
          const users = await asyncActions.countArtifactsWithBlob(sha256, this.#o.serverId);
          if (users === 0) await this.blobs.remove(sha256);
        }
        if (gone.length < 500) return removed;
      }
    })().finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  /** Sweeps now and every sweepEveryMs; removes temporary files a crash left. */
  start(): void {
    if (this.#sweeper) return;
    const run = () =>
      void this.sweep().catch((error: unknown) =>
        this.#o.log?.(`sweeping expired artifacts failed: ${String(error)}`),
      );
    void this.blobs.cleanTemporary(this.#o.uploadTtlMs).catch(() => undefined);
    run();
    this.#sweeper = setInterval(run, this.#o.sweepEveryMs);
    this.#sweeper.unref();
  }

  async close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    await this.#sweeping?.catch(() => undefined);
    this.#uploads.clear();
  }
}
