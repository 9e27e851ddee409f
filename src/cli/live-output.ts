/**
 * Prints a job's task output live, each line prefixed by its task, with a progress line
 * (tasks done/total, running, elapsed) kept at the bottom of a terminal.
 */
import type { Readable } from "node:stream";
import { join } from "node:path";
import type { ColonyEvents } from "../core/events.ts";
import { formatDuration } from "../core/duration.ts";
import { followFile, notifyDone } from "../core/output-follow.ts";
import { createMaskTransform } from "../core/outputs.ts";
import type { Engine } from "../engine/engine.ts";
import { paint } from "./output.ts";

const PALETTE = ["cyan", "magenta", "blue", "yellow", "green"] as const;

export interface LiveOutputOptions {
  engine: Engine;
  dataDir: string;
  jobRequestId: number;
  totalTasks: number;
  /** Where task output goes (stdout normally, stderr with --json). */
  out: NodeJS.WriteStream;
  /** Where progress and state lines go. */
  err: NodeJS.WriteStream;
  secrets: string[];
  quiet?: boolean;
}

export class LiveOutput {
  readonly #o: LiveOutputOptions;
  readonly #streams = new Map<
    string,
    { stream: Readable; path: string; done: boolean; flushed: Promise<void> }
  >();
  readonly #finished = new Set<string>();
  readonly #started = Date.now();
  readonly #colors = new Map<string, (s: string) => string>();
  #running = new Set<string>();
  #progressShown = false;
  #ticker: NodeJS.Timeout | undefined;
  readonly #onTask: (e: ColonyEvents["task:state"][0]) => void;

  constructor(options: LiveOutputOptions) {
    this.#o = options;
    this.#onTask = (e) => {
      if (e.jobRequestId !== options.jobRequestId) return;
      this.#taskEvent(e);
    };
    options.engine.events.on("task:state", this.#onTask);
    if (options.err.isTTY) {
      this.#ticker = setInterval(() => this.#drawProgress(), 250);
      this.#ticker.unref();
    }
  }

  /** Follows an execution that was already running (resume after a crash). */
  follow(executionId: string, taskType: string): void {
    this.#running.add(taskType);
    this.#startFollowing(executionId, taskType);
  }

  #color(taskType: string): (s: string) => string {
    let c = this.#colors.get(taskType);
    if (!c) {
      const p = paint(this.#o.out);
      c = p[PALETTE[this.#colors.size % PALETTE.length]!];
      this.#colors.set(taskType, c);
    }
    return c;
  }

  #write(stream: NodeJS.WriteStream, text: string): void {
    if (this.#progressShown) {
      this.#o.err.write("\r\x1b[K");
      this.#progressShown = false;
    }
    stream.write(text);
  }

  #taskEvent(e: ColonyEvents["task:state"][0]): void {
    const p = paint(this.#o.err);
    const label = this.#color(e.taskType)(`[${e.taskType}]`);
    if (e.state === "EXECUTING") {
      this.#running.add(e.taskType);
      const retry = e.attempt > 0 ? ` (attempt ${e.attempt + 1})` : "";
      this.#write(this.#o.err, `${label} ${p.dim(`started${retry}`)}\n`);
      this.#startFollowing(e.executionId, e.taskType);
    } else if (e.state === "COMPLETED" || e.state === "FAILED" || e.state === "CANCELLED") {
      this.#running.delete(e.taskType);
      this.#finished.add(e.taskType);
      const following = this.#streams.get(e.executionId);
      const report = () => {
        const mark =
          e.state === "COMPLETED"
            ? p.green("✓ COMPLETED")
            : e.state === "FAILED"
              ? p.red("✗ FAILED")
              : p.yellow("■ CANCELLED");
        const code = e.exitCode !== undefined ? ` exit ${e.exitCode}` : "";
        const why = e.error ? ` — ${e.error}` : "";
        this.#write(this.#o.err, `${label} ${mark}${code}${why}\n`);
        this.#drawProgress();
      };
      if (following) {
        following.done = true;
        notifyDone(following.path);
        void following.flushed.then(report);
      } else report();
    }
  }

  #startFollowing(executionId: string, taskType: string): void {
    if (this.#o.quiet || this.#streams.has(executionId)) return;
    const path = join(this.#o.dataDir, "units", executionId, "stdout");
    const entry = {
      stream: undefined as unknown as Readable,
      path,
      done: false,
      flushed: Promise.resolve(),
    };
    const source = followFile(path, { offset: 0, follow: true, done: () => entry.done });
    entry.stream =
      this.#o.secrets.length > 0 ? source.pipe(createMaskTransform(this.#o.secrets)) : source;
    this.#streams.set(executionId, entry);
    const prefix = this.#color(taskType)(`[${taskType}]`) + " ";
    let partial = "";
    entry.flushed = new Promise<void>((resolve) => {
      entry.stream.on("data", (chunk: Buffer) => {
        const text = partial + chunk.toString("utf8");
        const lines = text.split("\n");
        partial = lines.pop() ?? "";
        if (lines.length > 0)
          this.#write(this.#o.out, lines.map((l) => prefix + l + "\n").join(""));
      });
      const end = () => {
        if (partial) this.#write(this.#o.out, prefix + partial + "\n");
        partial = "";
        resolve();
      };
      entry.stream.on("end", end);
      entry.stream.on("error", end);
    });
  }

  #drawProgress(): void {
    if (!this.#o.err.isTTY) return;
    const p = paint(this.#o.err);
    const running = [...this.#running];
    const text = `${p.bold(`${this.#finished.size}/${this.#o.totalTasks}`)} tasks done · ${running.length} running${running.length ? ` (${running.join(", ")})` : ""} · ${formatDuration(Date.now() - this.#started)}`;
    this.#o.err.write(`\r\x1b[K${p.dim("▸")} ${text}`);
    this.#progressShown = true;
  }

  /** Waits for every followed output to be printed, then removes the progress line. */
  async close(): Promise<void> {
    this.#o.engine.events.off("task:state", this.#onTask);
    if (this.#ticker) clearInterval(this.#ticker);
    for (const entry of this.#streams.values()) {
      entry.done = true;
      notifyDone(entry.path);
    }
    await Promise.all([...this.#streams.values()].map((s) => s.flushed));
    if (this.#progressShown) this.#o.err.write("\r\x1b[K");
    this.#progressShown = false;
  }
}
