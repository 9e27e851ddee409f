/**
 * How long a CLI command takes from `colony …` to its exit, against a bare `node -e 0`
 * (the same Node binary) in the same run: what a CI script pays per call. Two commands:
 *
 * - `colony jobs list` against a real `colony server` process (one request, a table);
 * - `colony run --help`, which loads the embedded engine's command.
 *
 * Each is run ROUNDS times, alternating with the baseline, and the medians are printed.
 * The first run of each is not counted: it fills Node's compile cache (bin/colony.js
 * turns it on); a line with the cache turned off (NODE_DISABLE_COMPILE_CACHE=1) shows
 * what a first call, or a machine whose temp dir is not writable, pays.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServerProcess } from "./server-process.ts";
import type { BenchLine } from "./support.ts";

// CLI_BIN: another checkout's bin/colony.js, to compare two trees.
const BIN = process.env.CLI_BIN ?? fileURLToPath(new URL("../bin/colony.js", import.meta.url));

function wallMs(args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { env, encoding: "utf8" });
  const ms = performance.now() - started;
  if (r.status !== 0) {
    throw new Error(`node ${args.join(" ")} exited ${r.status}: ${r.stderr.slice(0, 500)}`);
  }
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function cliStart(rounds = 9): Promise<BenchLine[]> {
  const server = await startServerProcess();
  try {
    const jobsList = [BIN, "jobs", "list", "--server", server.url, "--token", server.token];
    const runHelp = [BIN, "run", "--help"];
    const uncached = { ...process.env, NODE_DISABLE_COMPILE_CACHE: "1" };
    const commands: Array<[string, string[], NodeJS.ProcessEnv?]> = [
      ["colony jobs list", jobsList],
      ["colony run --help", runHelp],
      ["colony jobs list, no compile cache", jobsList, uncached],
    ];
    for (const [, args, env] of commands) wallMs(args, env); // fills the cache
    const node: number[] = [];
    const times = commands.map((): number[] => []);
    for (let i = 0; i < rounds; i++) {
      node.push(wallMs(["-e", "0"]));
      commands.forEach(([, args, env], k) => times[k]!.push(wallMs(args, env)));
    }
    const base = median(node);
    return commands.map(([name], k) => {
      const ms = median(times[k]!);
      return {
        name: `CLI start: ${name}`,
        value: `${ms.toFixed(0)} ms`,
        baseline: `node -e 0 ${base.toFixed(0)} ms`,
        ratio: ms / base,
      };
    });
  } finally {
    await server.close();
  }
}
