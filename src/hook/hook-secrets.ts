/**
 * Per-execution hook keys (SPEC section 9): every process colony starts gets a fresh
 * random JOB_SECRET_KEY (32 random bytes, hex). The key works only while its execution
 * runs: it is forgotten (and its file removed) the moment the execution ends.
 *
 * Keys live in memory for the fast path, and in `{unitDir}/hook.key` (0600, in the 0700
 * data dir, beside the output the process writes) so that a restarted server, which
 * re-attaches to processes still running, accepts the key those processes already hold.
 * Starting the same execution again after a restart reuses that file instead of
 * minting a key the running process does not know.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** What a key is for: the caller the hook then sees. */
export interface HookHolder {
  /** JOB_ID: the unit id of a task execution, a /jobs process or a work unit. */
  jobId: string;
  kind: "task" | "process" | "unit";
  key: string;
  unitDir: string;
  /** Tasks: the job request and task they belong to. */
  jobRequestId?: number;
  jobType?: string;
  taskType?: string;
  attempt?: number;
}

const KEY_FILE = "hook.key";
const KEY_PATTERN = /^[0-9a-f]{64}$/;

export class HookSecrets {
  readonly #holders = new Map<string, HookHolder>();

  /**
   * The key of `holder.jobId`: the one already issued (in memory, or with `reattach` the
   * one in its unit dir, held by a process a restarted server re-attaches to), else a
   * fresh random one that is written to `{unitDir}/hook.key` before it is handed out.
   */
  issue(holder: Omit<HookHolder, "key">, reattach = false): string {
    const known = this.#holders.get(holder.jobId);
    if (known) return known.key;
    const file = join(holder.unitDir, KEY_FILE);
    let key: string | undefined;
    if (reattach) {
      try {
        const text = readFileSync(file, "utf8").trim();
        if (KEY_PATTERN.test(text)) key = text;
      } catch {
        key = undefined;
      }
    }
    if (key === undefined) {
      key = randomBytes(32).toString("hex");
      mkdirSync(holder.unitDir, { recursive: true, mode: 0o700 });
      writeFileSync(file, key, { mode: 0o600 });
    }
    this.#holders.set(holder.jobId, { ...holder, key });
    return key;
  }

  /** The live holder of `jobId`, if this process issued or loaded its key. */
  get(jobId: string): HookHolder | undefined {
    return this.#holders.get(jobId);
  }

  /**
   * After a restart: takes back the key a still-running execution holds, from its unit
   * dir. The caller must have checked that the execution has not ended.
   */
  async load(holder: Omit<HookHolder, "key">): Promise<HookHolder | undefined> {
    const known = this.#holders.get(holder.jobId);
    if (known) return known;
    let text: string;
    try {
      text = (await readFile(join(holder.unitDir, KEY_FILE), "utf8")).trim();
    } catch {
      return undefined;
    }
    if (!KEY_PATTERN.test(text)) return undefined;
    const loaded = { ...holder, key: text };
    this.#holders.set(holder.jobId, loaded);
    return loaded;
  }

  /** The execution ended: its key stops working now, here and after a restart. */
  revoke(jobId: string, unitDir?: string): void {
    const holder = this.#holders.get(jobId);
    this.#holders.delete(jobId);
    const dir = holder?.unitDir ?? unitDir;
    if (dir) rmSync(join(dir, KEY_FILE), { force: true });
  }

  get size(): number {
    return this.#holders.size;
  }
}
