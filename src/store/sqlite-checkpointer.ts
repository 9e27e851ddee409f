/**
 * WAL checkpoints off the event loop. In WAL mode with `synchronous = NORMAL` a commit
 * only appends to the `-wal` file; the fsyncs happen when the WAL is copied back into
 * the database file (a checkpoint). SQLite runs that automatically inside the commit
 * that crosses 1000 pages, which, with node:sqlite's synchronous API, blocked colony's
 * event loop for one or two fsyncs (10-15 ms on a virtual disk: the p99 of every task's
 * latency). Instead this worker thread, with a connection of its own to the same file,
 * runs a PASSIVE checkpoint (it never blocks writers) every `intervalMs`, and the
 * store's own connection keeps automatic checkpoints only as a safety net at 8x the
 * usual size. A writer that finds the WAL fully checkpointed starts it again from the
 * beginning (trimmed to journal_size_limit), so after any pause in writing it is small.
 *
 * Under writes without any pause (measured: 2000 shell jobs back to back) the WAL
 * cannot start over, since a commit lands during every checkpoint: it then grows to
 * the safety net, where the store's own connection checkpoints it once (25-30 ms on
 * the event loop, against 8-10 ms at every 1000 pages before). Everywhere else (any
 * pause in writing) the worker does it all.
 *
 * If the worker cannot run (or dies), the store turns automatic checkpoints back to
 * SQLite's default.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { DatabaseSync } from "node:sqlite";
import { BUSY_TIMEOUT_MS } from "./sqlite-errors.ts";

export interface Checkpointer {
  /** Stops the worker (its connection closes; the store's close checkpoints the rest). */
  close(): Promise<void>;
}

/** The key of this worker's data: another worker importing the store must not start a loop. */
const MARK = "colonySqliteCheckpointer";

interface WorkerInput {
  path: string;
  intervalMs: number;
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
  const failed = (error: Error) => {
    if (closing) return;
    closing = true;
    onFailure(error);
  };
  worker.once("error", failed);
  worker.once("exit", (code) => failed(new Error(`the checkpoint worker exited (code ${code})`)));
  return {
    async close() {
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
  const timer = setInterval(() => {
    try {
      checkpoint.get();
    } catch (error) {
      // SQLITE_BUSY (another checkpointer) is harmless: try again next time. Anything
      // else ends the worker, and the store falls back to automatic checkpoints.
      if (!/busy|locked/i.test((error as Error).message)) {
        clearInterval(timer);
        db.close();
        throw error;
      }
    }
  }, input.intervalMs);
  parentPort?.on("close", () => clearInterval(timer));
}

const input = isMainThread
  ? undefined
  : (workerData as Record<string, WorkerInput> | null | undefined)?.[MARK];
if (input) runWorker(input);
