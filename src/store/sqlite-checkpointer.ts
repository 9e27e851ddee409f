/**
 * WAL checkpoints off the event loop. In WAL mode with `synchronous = NORMAL` a commit
 * only appends to the `-wal` file; the fsyncs happen when the WAL is copied back into
 * the database file (a checkpoint). SQLite runs that automatically inside the commit
 * that crosses 1000 pages, which, with node:sqlite's synchronous API, blocked colony's
 * event loop for one or two fsyncs (10-15 ms on a virtual disk: the p99 of every task's
 * latency). Instead this worker thread, with a connection of its own to the same file,
 * runs a PASSIVE checkpoint (it never blocks writers) every `intervalMs`, and the
 * store's own connection keeps automatic checkpoints only as a safety net at 8x the
 * usual size.
 *
 * A writer starts the WAL over from its beginning only when, as its transaction
 * begins, every frame in it has been copied. Under writes without a pause that never
 * happens by itself: a commit lands during every checkpoint, the WAL grows to the
 * safety net, and the store's own connection then checkpoints it on the event loop
 * (25-45 ms, measured with 2000 shell jobs back to back), while every commit on the way
 * extends the file (a third dearer than overwriting it). So the worker reports how long
 * the WAL is after each checkpoint that changed it, and once it is long the store asks
 * for a restart window (`checkpointNow`): right after a commit it holds new operations
 * back for the moment the worker needs to copy the last frames (a few fsyncs, ~1-3 ms),
 * and its next transaction starts the WAL over. The event loop is never blocked: only
 * store operations wait, and they then share one commit.
 *
 * If the worker cannot run (or dies), the store turns automatic checkpoints back to
 * SQLite's default.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { DatabaseSync } from "node:sqlite";
import { BUSY_TIMEOUT_MS } from "./sqlite-errors.ts";

export interface Checkpointer {
  /** Frames in the WAL at the worker's last report (0 before the first, or after a restart window). */
  readonly walFrames: number;
  /**
   * Runs a checkpoint now, for a restart window: resolves "complete" once the whole WAL
   * was copied, "incomplete" when the worker answered that it could not be (another
   * connection reads an older snapshot), "no answer" when none came within `timeoutMs`
   * (the copy goes on in the worker) or the worker is gone.
   */
  checkpointNow(timeoutMs: number): Promise<CheckpointOutcome>;
  /** Stops the worker (its connection closes; the store's close checkpoints the rest). */
  close(): Promise<void>;
}

/**
 * When the store opens a restart window. A window opens after a commit once the WAL is
 * `frames` long. When the worker answers that it could not copy the whole WAL (a reader
 * holds an old snapshot), the next window would fail the same way right after the next
 * commit, holding every operation for a worker round trip each time: measured with a
 * reader holding a snapshot, a window after each of 4161 commits, all failing,
 * operations held 1.6 s of a 3.9 s run. So after such an answer none opens for
 * `backoffMs`, doubling with each one in a row up to `maxBackoffMs`; a window that worked
 * resets it. A window that got no answer in time (the copy outlasted it, as under heavy
 * writes) does not back off: the copy goes on in the worker, and trying again after the
 * next commit is what lets the WAL start over then.
 */
export class RestartWindows {
  readonly #frames: number;
  readonly #firstBackoffMs: number;
  readonly #maxBackoffMs: number;
  #backoffMs: number;
  #notBefore = 0;

  constructor(frames: number, backoffMs: number, maxBackoffMs: number) {
    this.#frames = frames;
    this.#firstBackoffMs = backoffMs;
    this.#maxBackoffMs = maxBackoffMs;
    this.#backoffMs = backoffMs;
  }

  /** Whether to open a window after this commit, with the WAL `walFrames` long. */
  due(walFrames: number, now: number): boolean {
    return walFrames >= this.#frames && now >= this.#notBefore;
  }

  /** The window that opened ended with the worker's answer. */
  ended(outcome: CheckpointOutcome, now: number): void {
    if (outcome === "complete") {
      this.#backoffMs = this.#firstBackoffMs;
      this.#notBefore = 0;
      return;
    }
    if (outcome === "no answer") return;
    this.#notBefore = now + this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#maxBackoffMs);
  }
}

export type CheckpointOutcome = "complete" | "incomplete" | "no answer";

/** The key of this worker's data: another worker importing the store must not start a loop. */
const MARK = "colonySqliteCheckpointer";

interface WorkerInput {
  path: string;
  intervalMs: number;
}

/** A checkpoint's outcome, as the worker reports it. */
interface Report {
  /** Frames in the WAL, and how many of them are in the database file now. */
  log: number;
  checkpointed: number;
  /** The answer to a checkpointNow() request. */
  now?: true;
}

/**
 * Starts the checkpoint worker for the database at `path`. `onFailure` is called once if
 * the worker stops on its own (the caller then re-enables automatic checkpoints).
 */
export function startCheckpointer(
  path: string,
  onFailure: (error: Error) => void,
  intervalMs = 20,
): Checkpointer {
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { [MARK]: { path, intervalMs } satisfies WorkerInput },
  });
  worker.unref();
  let closing = false;
  let walFrames = 0;
  let answer: ((outcome: CheckpointOutcome) => void) | undefined;
  const failed = (error: Error) => {
    answer?.("no answer");
    if (closing) return;
    closing = true;
    onFailure(error);
  };
  worker.on("message", (report: Report) => {
    walFrames = report.log;
    if (!report.now || !answer) return;
    const complete = report.log > 0 && report.checkpointed === report.log;
    // The window's transaction starts the WAL over: until the worker says otherwise.
    if (complete) walFrames = 0;
    answer(complete ? "complete" : "incomplete");
  });
  worker.once("error", failed);
  worker.once("exit", (code) => failed(new Error(`the checkpoint worker exited (code ${code})`)));
  return {
    get walFrames() {
      return walFrames;
    },
    checkpointNow(timeoutMs) {
      if (closing || answer) return Promise.resolve("no answer");
      return new Promise<CheckpointOutcome>((resolve) => {
        const timer = setTimeout(() => settle("no answer"), timeoutMs);
        const settle = (outcome: CheckpointOutcome) => {
          clearTimeout(timer);
          answer = undefined;
          resolve(outcome);
        };
        answer = settle;
        worker.postMessage("now");
      });
    },
    async close() {
      answer?.("no answer");
      if (closing) return;
      closing = true;
      await worker.terminate();
    },
  };
}

function runWorker(input: WorkerInput): void {
  const db = new DatabaseSync(input.path, { timeout: BUSY_TIMEOUT_MS });
  db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS};`);
  const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
  let reported = -1;
  const run = (now: boolean) => {
    let report: Report = { log: 0, checkpointed: 0 };
    try {
      const row = checkpoint.get() as { log: number; checkpointed: number };
      report = { log: row.log, checkpointed: row.checkpointed };
    } catch (error) {
      // SQLITE_BUSY (another checkpointer) is harmless: try again next time. Anything
      // else ends the worker, and the store falls back to automatic checkpoints.
      if (!/busy|locked/i.test((error as Error).message)) {
        clearInterval(timer);
        db.close();
        throw error;
      }
    }
    // Reported when the WAL changed (not 50 times a second to an idle store), or asked.
    if (now) parentPort?.postMessage({ ...report, now: true } satisfies Report);
    else if (report.log !== reported) parentPort?.postMessage(report);
    reported = report.log;
  };
  const timer = setInterval(() => run(false), input.intervalMs);
  parentPort?.on("message", (message) => {
    if (message === "now") run(true);
  });
  parentPort?.on("close", () => clearInterval(timer));
}

const input = isMainThread
  ? undefined
  : (workerData as Record<string, WorkerInput> | null | undefined)?.[MARK];
if (input) runWorker(input);
