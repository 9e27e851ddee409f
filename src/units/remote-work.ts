/**
 * Remote work (seed 002 "Remote work"; SPEC section 7): a local unit of work type
 * `remote` whose work runs on a peer node. The local unit submits it to the peer over
 * the peer's REST API, mirrors the peer unit's state, detail and StdoutSize into its own
 * status, and appends the peer's output to its own `stdout`, always asking from its own
 * file size: a broken connection or a restart resumes exactly where the file ends, with
 * no gap and no duplicate.
 *
 * Two loops per unit, both with back-off (1 s x 1.5 up to a maximum) while the peer is
 * unreachable:
 * - control: submit until it is accepted (the peer dedups retries by origin), honour
 *   the TTL, deliver a pending cancel or release, and poll the peer's status;
 * - copy: follow the peer unit's output from the local size until the peer unit ends.
 * The unit becomes final only when the peer's is and every byte has been copied.
 */
import { open, type FileHandle } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { notifyFileChanged } from "../core/output-follow.ts";
import { PeerError, type PeerClient, type PeerUnitView } from "./peer-client.ts";
import {
  CANCELED,
  FAILED,
  isFinalState,
  type UnitPaths,
  type UnitState,
  type UnitStatus,
} from "./unit-files.ts";

/** ExtraData of a remote unit, receptor's RemoteExtraData field for field. */
export interface RemoteExtraData {
  RemoteNode: string;
  RemoteWorkType: string;
  /** Sent with the submission; `secret_*` values are sealed on disk, removed from views. */
  RemoteParams: Record<string, string>;
  RemoteUnitID: string;
  RemoteStarted: boolean;
  LocalCancelled: boolean;
  LocalReleased: boolean;
  SignWork: boolean;
  TLSClient: string;
  /** RFC 3339; Go's zero time means no TTL. */
  Expiration: string;
}

export const NO_EXPIRATION = "0001-01-01T00:00:00Z";

export function isRemoteExtraData(value: unknown): value is RemoteExtraData {
  const v = value as Partial<RemoteExtraData> | null;
  return (
    typeof v === "object" &&
    v !== null &&
    typeof v.RemoteNode === "string" &&
    typeof v.RemoteWorkType === "string"
  );
}

export interface StatusChange {
  state?: UnitState;
  detail?: string;
  stdoutSize?: number;
  extra?: Partial<RemoteExtraData>;
}

/** What a remote unit needs from the unit manager. */
export interface RemoteHost {
  readonly unitId: string;
  readonly nodeId: string;
  readonly paths: UnitPaths;
  status(): UnitStatus;
  extra(): RemoteExtraData;
  /** Applies and persists a change (ignored once the unit is released). */
  update(change: StatusChange, durable?: boolean): Promise<void>;
  /** Makes the unit final (once). */
  finish(state: UnitState, detail: string, stdoutSize: number): Promise<void>;
  /** Deletes the local unit (files and memory). */
  remove(): Promise<void>;
  /** RemoteParams with secrets opened, to send. */
  params(): Record<string, string>;
  /** A fresh signature for the peer when the unit is signed work. */
  signature(): string | undefined;
  log(message: string): void;
}

export interface RemoteTiming {
  pollMs: number;
  retryMinMs: number;
  retryMaxMs: number;
}

export type StartResult = "Job Started" | "Job Submitted";

export class RemoteWork {
  readonly #host: RemoteHost;
  readonly #peer: PeerClient;
  readonly #timing: RemoteTiming;
  readonly #abort = new AbortController();
  #stopped = false;
  #localSize: number;
  #controlRunning = false;
  #copyRunning = false;
  #cancelDelivered = false;
  #streamAbort: AbortController | undefined;

  constructor(host: RemoteHost, peer: PeerClient, timing: RemoteTiming, localSize: number) {
    this.#host = host;
    this.#peer = peer;
    this.#timing = timing;
    this.#localSize = localSize;
  }

  get peerNodeId(): string {
    return this.#peer.nodeId;
  }

  /**
   * The first submission, made while the submitting client waits: "Job Started" when the
   * peer accepted it, "Job Submitted" when the peer is unreachable (retried in the
   * background); a refusal fails the unit and throws.
   */
  async firstStart(): Promise<StartResult> {
    try {
      await this.#submit();
    } catch (error) {
      if (error instanceof PeerError && error.kind === "unreachable") {
        // On disk before the client hears "Job Submitted": a restart goes on submitting.
        await this.#host.update({ detail: `waiting to submit: ${error.message}` }, true);
        this.resume();
        return "Job Submitted";
      }
      await this.#host.finish(FAILED, `Error starting remote work: ${messageOf(error)}`, 0);
      throw error;
    }
    this.resume();
    return "Job Started";
  }

  /** Starts (or restarts after a server restart) the loops the unit's state calls for. */
  resume(): void {
    if (this.#stopped) return;
    const status = this.#host.status();
    const extra = this.#host.extra();
    if (isFinalState(status.State) && !extra.LocalReleased) return;
    this.#startControl();
    if (extra.RemoteStarted && !isFinalState(status.State)) this.#startCopy();
  }

  /** `work cancel`: "cancelled", or "cancel pending" while the peer is unreachable. */
  async cancel(): Promise<"cancelled" | "cancel pending"> {
    if (isFinalState(this.#host.status().State)) return "cancelled";
    await this.#host.update({ extra: { LocalCancelled: true } }, true);
    const extra = this.#host.extra();
    if (!extra.RemoteStarted) {
      await this.#host.finish(CANCELED, `Canceled before it started on ${extra.RemoteNode}`, 0);
      return "cancelled";
    }
    try {
      await this.#cancelRemote();
      return "cancelled";
    } catch (error) {
      if (error instanceof PeerError && error.kind === "unreachable") {
        this.#startControl();
        return "cancel pending";
      }
      if (error instanceof PeerError && error.kind === "gone") {
        await this.#host.finish(CANCELED, "Canceled (the remote unit was gone)", this.#localSize);
        return "cancelled";
      }
      throw error;
    }
  }

  /**
   * `work release` (force: `work force-release`): releases the peer's unit, then deletes
   * the local one. While the peer is unreachable the release is pending and the local
   * files stay; force makes one attempt and deletes locally whatever happens.
   */
  async release(force: boolean): Promise<"released" | "release pending"> {
    const extra = this.#host.extra();
    if (!extra.RemoteStarted) {
      this.stop();
      await this.#host.remove();
      return "released";
    }
    try {
      await this.#releaseRemote(force);
      return "released";
    } catch (error) {
      if (force) {
        this.#host.log(
          `unit ${this.#host.unitId}: force-release: ${messageOf(error)}; deleted here only`,
        );
        this.stop();
        await this.#host.remove();
        return "released";
      }
      if (error instanceof PeerError && error.kind === "unreachable") {
        await this.#host.update({ extra: { LocalReleased: true } }, true);
        this.#startControl();
        return "release pending";
      }
      throw error;
    }
  }

  /** Stops both loops (server shutdown, or the unit is gone); the unit stays as it is. */
  stop(): void {
    this.#stopped = true;
    this.#abort.abort();
  }

  // -- steps ----------------------------------------------------------------------------

  async #submit(): Promise<void> {
    const extra = this.#host.extra();
    const view = await this.#peer.submit({
      workType: extra.RemoteWorkType,
      params: this.#host.params(),
      origin: `${this.#host.nodeId}/${this.#host.unitId}`,
      stdinPath: this.#host.paths.stdin,
      ...signatureOf(this.#host),
    });
    if (view.node && view.node !== this.#peer.nodeId) {
      throw new PeerError(
        "refused",
        `the peer at ${this.#peer.url.origin} is node '${view.node}', not '${this.#peer.nodeId}'; fix its url in peers`,
      );
    }
    await this.#host.update(
      {
        extra: { RemoteUnitID: view.id, RemoteStarted: true },
        ...(isFinalState(view.state_code) ? {} : { state: view.state_code as UnitState }),
        detail: view.detail,
        stdoutSize: view.stdout_size,
      },
      true,
    );
    if (!this.#stopped) this.#startCopy();
  }

  async #cancelRemote(): Promise<void> {
    const rid = this.#host.extra().RemoteUnitID;
    await this.#peer.cancel(rid, this.#host.signature());
    this.#cancelDelivered = true;
    await this.#mirror(await this.#peer.status(rid, this.#host.signature()));
  }

  async #releaseRemote(force: boolean): Promise<void> {
    const rid = this.#host.extra().RemoteUnitID;
    try {
      await this.#peer.release(rid, force, this.#host.signature());
    } catch (error) {
      if (!(error instanceof PeerError && error.kind === "gone")) throw error;
    }
    this.stop();
    await this.#host.remove();
  }

  /** Copies a peer status into the local one; final only once all output is here. */
  async #mirror(view: PeerUnitView): Promise<void> {
    if (isFinalState(this.#host.status().State)) return;
    if (isFinalState(view.state_code)) {
      if (this.#localSize >= view.stdout_size) {
        await this.#host.finish(view.state_code as UnitState, view.detail, this.#localSize);
        this.#streamAbort?.abort();
      } else {
        await this.#host.update({ detail: view.detail, stdoutSize: view.stdout_size });
      }
      return;
    }
    await this.#host.update({
      state: view.state_code as UnitState,
      detail: view.detail,
      stdoutSize: view.stdout_size,
    });
  }

  // -- loops ------------------------------------------------------------------------------

  #startControl(): void {
    if (this.#controlRunning || this.#stopped) return;
    this.#controlRunning = true;
    void this.#controlLoop().finally(() => (this.#controlRunning = false));
  }

  #startCopy(): void {
    if (this.#copyRunning || this.#stopped) return;
    this.#copyRunning = true;
    void this.#copyLoop().finally(() => (this.#copyRunning = false));
  }

  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#abort.signal }).catch(() => undefined);
  }

  async #controlLoop(): Promise<void> {
    let backoff = this.#timing.retryMinMs;
    while (!this.#stopped) {
      try {
        if (!(await this.#controlStep())) return;
        backoff = this.#timing.retryMinMs;
        await this.#pause(this.#timing.pollMs);
      } catch (error) {
        if (this.#stopped) return;
        if (error instanceof PeerError && error.kind === "unreachable") {
          await this.#noteWaiting(error, backoff);
          await this.#pause(backoff);
          backoff = Math.min(backoff * 1.5, this.#timing.retryMaxMs);
          continue;
        }
        if (!(await this.#controlFailed(error))) return;
        await this.#pause(this.#timing.retryMaxMs);
      }
    }
  }

  /** One round of the control loop; false when there is nothing left for it to do. */
  async #controlStep(): Promise<boolean> {
    const extra = this.#host.extra();
    if (extra.LocalReleased) {
      await this.#releaseRemote(false);
      return false;
    }
    if (!extra.RemoteStarted) {
      if (extra.LocalCancelled) return false;
      if (extra.Expiration !== NO_EXPIRATION && Date.now() >= Date.parse(extra.Expiration)) {
        await this.#host.finish(FAILED, `Work unit expired on ${extra.Expiration}`, 0);
        return false;
      }
      await this.#submit();
    }
    if (this.#host.extra().LocalCancelled && !this.#cancelDelivered) await this.#cancelRemote();
    if (isFinalState(this.#host.status().State)) return false;
    await this.#mirror(
      await this.#peer.status(this.#host.extra().RemoteUnitID, this.#host.signature()),
    );
    return !isFinalState(this.#host.status().State);
  }

  async #noteWaiting(error: PeerError, backoff: number): Promise<void> {
    const extra = this.#host.extra();
    const what = extra.LocalReleased
      ? "release pending"
      : extra.LocalCancelled && !this.#cancelDelivered
        ? "cancel pending"
        : extra.RemoteStarted
          ? undefined
          : "waiting to submit";
    if (what === undefined) return; // a running unit keeps its mirrored detail
    await this.#host.update({
      detail: `${what}: ${error.message}; retrying in ${Math.round(backoff / 100) / 10}s`,
    });
  }

  /** A refusal or a gone unit in the control loop; true to keep the loop going. */
  async #controlFailed(error: unknown): Promise<boolean> {
    const extra = this.#host.extra();
    const message = messageOf(error);
    if (error instanceof PeerError && error.kind === "gone") {
      if (extra.LocalReleased) {
        this.stop();
        await this.#host.remove();
      } else {
        await this.#host.finish(FAILED, "Remote work unit is gone", this.#localSize);
      }
      return false;
    }
    if (!extra.RemoteStarted) {
      await this.#host.finish(FAILED, `Error starting remote work: ${message}`, 0);
      return false;
    }
    if (extra.LocalReleased) {
      this.#host.log(`unit ${this.#host.unitId}: release refused: ${message}`);
      await this.#host.update({ extra: { LocalReleased: false } }, true);
      return false;
    }
    if (extra.LocalCancelled && !this.#cancelDelivered) {
      this.#host.log(`unit ${this.#host.unitId}: cancel refused: ${message}`);
      this.#cancelDelivered = true;
      return true;
    }
    // Monitoring refused (a revoked token, a key that changed): keep trying, slowly.
    await this.#host.update({ detail: `cannot monitor: ${message}` });
    return true;
  }

  async #copyLoop(): Promise<void> {
    let fh: FileHandle | undefined;
    let backoff = this.#timing.retryMinMs;
    try {
      fh = await open(this.#host.paths.stdout, "a", 0o600);
      while (!this.#stopped && !isFinalState(this.#host.status().State)) {
        const rid = this.#host.extra().RemoteUnitID;
        this.#streamAbort = new AbortController();
        const signal = AbortSignal.any([this.#abort.signal, this.#streamAbort.signal]);
        try {
          this.#localSize = (await fh.stat()).size;
          const stream = await this.#peer.stdout(rid, this.#localSize, {
            ...signatureOf(this.#host),
            signal,
          });
          // Chunks that arrived together are written together (one writev, not one
          // write per 64 KiB), and the size grows only by what is on disk.
          let batch: Buffer[] = [];
          let batchBytes = 0;
          for await (const chunk of stream) {
            batch.push(chunk as Buffer);
            batchBytes += (chunk as Buffer).length;
            if (batchBytes < 1024 * 1024 && stream.readableLength > 0) continue;
            await fh.writev(batch);
            this.#localSize += batchBytes;
            batch = [];
            batchBytes = 0;
            notifyFileChanged(this.#host.paths.stdout);
            backoff = this.#timing.retryMinMs;
          }
          if (batch.length > 0) {
            await fh.writev(batch);
            this.#localSize += batchBytes;
            notifyFileChanged(this.#host.paths.stdout);
          }
          await this.#mirror(await this.#peer.status(rid, this.#host.signature()));
          if (!isFinalState(this.#host.status().State)) await this.#pause(this.#timing.retryMinMs);
        } catch (error) {
          if (this.#stopped || isFinalState(this.#host.status().State)) return;
          if (error instanceof PeerError && error.kind === "gone") {
            if (!this.#host.extra().LocalReleased) {
              await this.#host.finish(FAILED, "Remote work unit is gone", this.#localSize);
            }
            return;
          }
          const refused = error instanceof PeerError && error.kind === "refused";
          await this.#pause(refused ? this.#timing.retryMaxMs : backoff);
          backoff = Math.min(backoff * 1.5, this.#timing.retryMaxMs);
        }
      }
    } catch (error) {
      this.#host.log(`unit ${this.#host.unitId}: copying output stopped: ${messageOf(error)}`);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }
}

function signatureOf(host: RemoteHost): { signature?: string } {
  const signature = host.signature();
  return signature === undefined ? {} : { signature };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
