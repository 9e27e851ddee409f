/**
 * Follows a job on a server, as `colony run` follows one here: every task's output live,
 * each line prefixed by its task, a "started" and a verdict line per task, and a
 * progress line (tasks done/total, running, elapsed) at the bottom of a terminal.
 *
 * The job's tasks are polled (GET /api/job-requests/{id}): every 50 ms for a second
 * after following began or something changed (a state, a new task), else every ~300 ms;
 * so a job that starts at once, or a DAG moving from task to task, shows each step as it
 * happens, and a long task costs the server ~3 requests a second. Each execution gets one
 * follow stream (GET /api/task-executions/{unit}/output?follow=1) from its start, so no
 * byte is missed however late the poll sees it.
 */
import type { Readable } from "node:stream";
import type { ColonyClient, JobRequestView, TaskExecutionView } from "../client/client.ts";
import { formatDuration } from "../core/duration.ts";
import { paint } from "./output.ts";

const PALETTE = ["cyan", "magenta", "blue", "yellow", "green"] as const;
/** Poll interval while things move (see the module comment), and for how long after a change. */
const QUICK_POLL_MS = 50;
const QUICK_FOR_MS = 1000;

/** How long to wait before the next poll, `sinceChangeMs` after the last change seen. */
export function nextPollDelay(sinceChangeMs: number, slowMs: number): number {
  return sinceChangeMs < QUICK_FOR_MS ? Math.min(QUICK_POLL_MS, slowMs) : slowMs;
}

/** What a poll compares with the previous one: the job's state and each task's. */
function progressOf(job: JobRequestView): string {
  return `${job.state} ${(job.tasks ?? []).map((t) => `${t.id}:${t.state}`).join(",")}`;
}
const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

export interface RemoteFollowOptions {
  client: ColonyClient;
  jobRequestId: number;
  /** Where task output goes (stdout; stderr with --json). */
  out: NodeJS.WriteStream;
  /** Where started/verdict and progress lines go. */
  err: NodeJS.WriteStream;
  /** Only state lines, no output. */
  quiet?: boolean;
  pollMs?: number;
  /** Only executions of this task. */
  taskType?: string;
}

interface Followed {
  execution: TaskExecutionView;
  stream?: Readable;
  printed: Promise<void>;
  reported: boolean;
}

export class RemoteFollow {
  readonly #o: RemoteFollowOptions;
  readonly #followed = new Map<string, Followed>();
  readonly #colors = new Map<string, (s: string) => string>();
  readonly #started = Date.now();
  #progressShown = false;
  #stopped = false;
  #last: JobRequestView | undefined;
  /** Runs before the one current when following began are history, not followed. */
  #fromAttempt: number | undefined;
  #ticker: NodeJS.Timeout | undefined;
  /** The error code of the wait last reported (see #sayWhyItWaits). */
  #waitShown: string | undefined;

  constructor(options: RemoteFollowOptions) {
    this.#o = options;
  }

  /** Follows until the job ends (or stop()); resolves with its last view. */
  async run(): Promise<JobRequestView> {
    if (this.#o.err.isTTY) {
      this.#ticker = setInterval(() => this.#drawProgress(), 250);
      this.#ticker.unref();
    }
    let lastProgress = "";
    let changedAt = Date.now();
    try {
      for (;;) {
        const job = await this.#o.client.getJobRequest(this.#o.jobRequestId);
        this.#last = job;
        this.#fromAttempt ??= job.attempt;
        await this.#seeAll((job.tasks ?? []).filter((t) => t.job_attempt >= this.#fromAttempt!));
        await this.#sayWhyItWaits(job);
        if (FINAL.has(job.state) || this.#stopped) {
          // Every stream ends on its own once its execution ended; print all of it.
          await Promise.all([...this.#followed.values()].map((f) => f.printed));
          for (const f of this.#followed.values()) this.#report(f);
          break;
        }
        const progress = progressOf(job);
        if (progress !== lastProgress) [lastProgress, changedAt] = [progress, Date.now()];
        const delay = nextPollDelay(Date.now() - changedAt, this.#o.pollMs ?? 300);
        await new Promise((r) => setTimeout(r, delay));
      }
    } finally {
      if (this.#ticker) clearInterval(this.#ticker);
      this.#clearProgress();
      if (this.#stopped) for (const f of this.#followed.values()) f.stream?.destroy();
    }
    return this.#last!;
  }

  /**
   * A PENDING job with an error code waits for something (COLONY_NO_ANT: no ant serves
   * its first task, or the next one): said once per reason, not at every re-try, and
   * after the output and end of the tasks that ran before it went back to waiting.
   */
  async #sayWhyItWaits(job: JobRequestView): Promise<void> {
    const code = job.state === "PENDING" ? (job.error_code ?? undefined) : undefined;
    if (code !== undefined && code !== this.#waitShown && job.error_message) {
      const ended = [...this.#followed.values()].filter((f) => FINAL.has(f.execution.state));
      await Promise.all(ended.map((f) => f.printed));
      const p = paint(this.#o.err);
      this.#write(
        this.#o.err,
        `${p.yellow(`job ${job.id} waits`)} (${code}): ${job.error_message}\n`,
      );
    }
    this.#waitShown = code;
  }

  /** Stops following (the job goes on on the server). */
  stop(): void {
    this.#stopped = true;
    for (const f of this.#followed.values()) f.stream?.destroy();
  }

  /**
   * The tasks that have ended first, in the order they ended, each with all its output
   * and its verdict; then the others. So a task never shows as started before the tasks
   * it waited for have shown as ended, even when both changed between two polls.
   */
  async #seeAll(tasks: TaskExecutionView[]): Promise<void> {
    const ended = tasks
      .filter((t) => FINAL.has(t.state))
      .sort((a, b) => (a.ended_at ?? "").localeCompare(b.ended_at ?? ""));
    for (const t of ended) {
      this.#see(t);
      const f = this.#followed.get(t.id);
      if (f && !f.reported) {
        await f.printed;
        this.#report(f);
      }
    }
    for (const t of tasks) if (!FINAL.has(t.state)) this.#see(t);
  }

  #see(t: TaskExecutionView): void {
    if (this.#o.taskType !== undefined && t.task_type !== this.#o.taskType) return;
    let f = this.#followed.get(t.id);
    if (!f) {
      if (t.state === "PENDING" || t.state === "READY") return; // not running yet
      f = { execution: t, printed: Promise.resolve(), reported: false };
      this.#followed.set(t.id, f);
      const p = paint(this.#o.err);
      const retry = t.attempt > 0 ? ` (attempt ${t.attempt + 1})` : "";
      this.#write(this.#o.err, `${this.#label(t.task_type)} ${p.dim(`started${retry}`)}\n`);
      if (!this.#o.quiet) this.#follow(f);
    }
    f.execution = t; // an ended one is reported by #seeAll, once its output is printed
  }

  #follow(f: Followed): void {
    const prefix = this.#label(f.execution.task_type) + " ";
    f.printed = (async () => {
      let partial = "";
      try {
        const stream = await this.#o.client.executionOutput(f.execution.id, { follow: true });
        f.stream = stream;
        if (this.#stopped) stream.destroy();
        for await (const chunk of stream) {
          const lines = (partial + (chunk as Buffer).toString("utf8")).split("\n");
          partial = lines.pop() ?? "";
          if (lines.length > 0)
            this.#write(this.#o.out, lines.map((l) => prefix + l + "\n").join(""));
        }
      } catch (error) {
        if (!this.#stopped) {
          const p = paint(this.#o.err);
          this.#write(
            this.#o.err,
            `${prefix}${p.yellow(`(output stream broke: ${(error as Error).message})`)}\n`,
          );
        }
      }
      if (partial) this.#write(this.#o.out, prefix + partial + "\n");
    })();
  }

  #report(f: Followed): void {
    const t = f.execution;
    if (f.reported || !FINAL.has(t.state)) return;
    f.reported = true;
    const p = paint(this.#o.err);
    const mark =
      t.state === "COMPLETED"
        ? p.green("✓ COMPLETED")
        : t.state === "FAILED"
          ? p.red("✗ FAILED")
          : p.yellow("■ CANCELLED");
    const code = t.exit_code !== null ? ` exit ${t.exit_code}` : "";
    const why = t.error_message ? ` — ${t.error_message}` : "";
    this.#write(this.#o.err, `${this.#label(t.task_type)} ${mark}${code}${why}\n`);
    this.#drawProgress();
  }

  #label(taskType: string): string {
    let c = this.#colors.get(taskType);
    if (!c) {
      c = paint(this.#o.out)[PALETTE[this.#colors.size % PALETTE.length]!];
      this.#colors.set(taskType, c);
    }
    return c(`[${taskType}]`);
  }

  #write(stream: NodeJS.WriteStream, text: string): void {
    this.#clearProgress();
    stream.write(text);
  }

  #clearProgress(): void {
    if (!this.#progressShown) return;
    this.#o.err.write("\r\x1b[K");
    this.#progressShown = false;
  }

  #drawProgress(): void {
    if (!this.#o.err.isTTY || !this.#last) return;
    const p = paint(this.#o.err);
    const mine = [...this.#followed.values()].map((f) => f.execution);
    const done = new Set(mine.filter((t) => FINAL.has(t.state)).map((t) => t.task_type)).size;
    const running = mine.filter((t) => !FINAL.has(t.state)).map((t) => t.task_type);
    const total = this.#o.taskType !== undefined ? 1 : this.#last.task_types.length;
    const text = `${p.bold(`${done}/${total}`)} tasks done · ${running.length} running${running.length ? ` (${running.join(", ")})` : ""} · job ${this.#last.id} ${this.#last.state} · ${formatDuration(Date.now() - this.#started)}`;
    this.#o.err.write(`\r\x1b[K${p.dim("▸")} ${text}`);
    this.#progressShown = true;
  }
}
