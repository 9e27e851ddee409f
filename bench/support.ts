/** Shared helpers for benchmarks: temp data dirs, timing, percentiles, ratio lines. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import type { ExecutionRequest } from "../src/core/executor.ts";
import type { TaskDefinition } from "../src/core/job-definition.ts";

const leftDirs: string[] = [];
process.once("exit", () => {
  for (const path of leftDirs) rmSync(path, { recursive: true, force: true });
});

/**
 * A data dir for one measured run, in `under` (default: BENCH_DIR, else the OS temp dir). `remove()` only marks it: the dirs are deleted when
 * the bench process exits, because deleting thousands of files between runs makes the
 * next run's file creations slower (ext4 skips inodes freed in the last ~35 s, checking
 * each one), which would charge the bench's housekeeping to the next colony run.
 */
export function tempDataDir(under?: string): { path: string; remove(): void } {
  // BENCH_DIR puts data dirs on a chosen disk (default: the OS temp dir).
  const parent = under ?? process.env.BENCH_DIR ?? tmpdir();
  const path = mkdtempSync(join(parent, "colony-bench-"));
  return { path, remove: () => void leftDirs.push(path) };
}

/** The ExecutionRequest of a no-op WEBSOCKET task of the ants bench (job 1, bench-ws). */
export function antsBenchRequest(
  task: TaskDefinition,
  executionId: string,
  unitDir = "",
): ExecutionRequest {
  return {
    executionId,
    method: "WEBSOCKET",
    task,
    env: {},
    variables: {},
    unitDir,
    jobRequestId: 1,
    jobType: "bench-ws",
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Runs `seq n | xargs -P c -I{} <shell> -c <command>` and returns commands per second. */
export function xargsRate(n: number, concurrency: number, command = "true", shell = "sh"): number {
  const started = performance.now();
  const r = spawnSync(
    "bash",
    ["-c", `seq ${n} | xargs -P ${concurrency} -I{} ${shell} -c '${command}'`],
    {
      stdio: "ignore",
    },
  );
  if (r.status !== 0) throw new Error(`xargs baseline failed with ${r.status}`);
  return n / ((performance.now() - started) / 1000);
}

export interface BenchLine {
  name: string;
  value: string;
  baseline?: string;
  ratio?: number;
  target?: string;
}

export function printLines(lines: BenchLine[]): void {
  for (const l of lines) {
    const ratio = l.ratio === undefined ? "" : `  ratio ${l.ratio.toFixed(2)}`;
    const base = l.baseline ? `  vs ${l.baseline}` : "";
    const target = l.target ? `  (target ${l.target})` : "";
    console.log(`${l.name.padEnd(34)} ${l.value}${base}${ratio}${target}`);
  }
}

/**
 * A distribution-free 90 % confidence interval of the median of `values`: the k-th
 * smallest and k-th largest, k the largest with P(Binomial(n, ½) < k) ≤ 5 %. Undefined
 * with fewer than 5 values (no such k). bench:ab prints it for the per-round ratios: an
 * A/A run on this VM (the same tree on both sides) read medians of 0.96–1.07, so a
 * change shows only where its interval leaves 1.
 */
export function medianInterval(values: number[]): [number, number] | undefined {
  const n = values.length;
  const sorted = [...values].sort((a, b) => a - b);
  let below = 0; // P(Binomial(n, ½) < k)
  let term = 0.5 ** n; // P(Binomial(n, ½) = k), from k = 0
  let k = 0;
  while (k < n && below + term <= 0.05) {
    below += term;
    term = (term * (n - k)) / (k + 1);
    k++;
  }
  return k === 0 ? undefined : [sorted[k - 1]!, sorted[n - k]!];
}
