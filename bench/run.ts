/**
 * npm run bench: every benchmark, each printed as a ratio against a baseline measured in
 * the same run (the machine is shared and noisy; absolute numbers drift).
 * Usage: npm run bench [-- name...]   (names: shell, latency, api, stream, docker, dashboard, units,
 * function, hook, ants, messaging, cli, ids, parse, dag, waiting)
 */
import { cpus, totalmem } from "node:os";
import { printLines, type BenchLine } from "./support.ts";
import { shellThroughput } from "./shell-throughput.ts";
import { taskLatency } from "./task-latency.ts";
import { apiThroughput } from "./api-throughput.ts";
import { outputStream } from "./output-stream.ts";
import { dashboardBench } from "./dashboard.ts";
import { dockerOverhead } from "./docker-overhead.ts";
import { unitsBench } from "./units.ts";
import { functionThroughput } from "./function-throughput.ts";
import { hookThroughput } from "./hook-throughput.ts";
import { antsDispatch } from "./ants-dispatch.ts";
import { messagingRoundTrip } from "./messaging-roundtrip.ts";
import { cliStart } from "./cli-start.ts";
import { unitIdsBench } from "./unit-ids.ts";
import { definitionParse } from "./definition-parse.ts";
import { dagScaling } from "./dag-scaling.ts";
import { waitingClaims } from "./waiting-claims.ts";

const BENCHES: Record<string, () => Promise<BenchLine[]>> = {
  shell: () =>
    shellThroughput(Number(process.env.BENCH_N ?? 2000), Number(process.env.BENCH_P ?? 8)),
  latency: () => taskLatency(Number(process.env.BENCH_LATENCY_N ?? 1000)),
  api: () =>
    apiThroughput(
      Number(process.env.BENCH_API_N ?? 2000),
      Number(process.env.BENCH_API_CLIENTS ?? 50),
      Number(process.env.BENCH_P ?? 8),
    ),
  stream: () =>
    outputStream(
      Number(process.env.BENCH_STREAM_MB ?? 200),
      Number(process.env.BENCH_STREAM_CLIENTS ?? 10),
    ),
  docker: () => dockerOverhead(Number(process.env.BENCH_DOCKER_N ?? 20)),
  dashboard: () => dashboardBench(),
  units: () =>
    unitsBench(
      Number(process.env.BENCH_UNITS_N ?? 500),
      Number(process.env.BENCH_P ?? 8),
      Number(process.env.BENCH_UNITS_MB ?? 100),
    ),
  function: () =>
    functionThroughput(
      Number(process.env.BENCH_FUNCTION_N ?? 5000),
      Number(process.env.BENCH_FUNCTION_C ?? 16),
      Number(process.env.BENCH_FUNCTION_LATENCY_N ?? 500),
      Number(process.env.BENCH_FUNCTION_PAIRS ?? 3),
    ),
  hook: () =>
    hookThroughput(
      Number(process.env.BENCH_HOOK_N ?? 5000),
      Number(process.env.BENCH_HOOK_CLIENTS ?? 16),
    ),
  ants: () =>
    antsDispatch(
      Number(process.env.BENCH_ANTS_N ?? 20_000),
      Number(process.env.BENCH_ANTS ?? 50),
      3,
      Number(process.env.BENCH_ANTS_JOBS_N ?? 5000),
    ),
  messaging: () =>
    messagingRoundTrip(
      Number(process.env.BENCH_MESSAGING_N ?? 3000),
      Number(process.env.BENCH_MESSAGING_C ?? 16),
    ),
  cli: () => cliStart(Number(process.env.BENCH_CLI_ROUNDS ?? 9)),
  ids: () =>
    unitIdsBench(
      Number(process.env.BENCH_IDS_N ?? 20_000),
      Number(process.env.BENCH_IDS_STORED ?? 100_000),
    ),
  parse: () => definitionParse(Number(process.env.BENCH_PARSE_TASKS ?? 20_000)),
  dag: () => dagScaling(Number(process.env.BENCH_DAG_TASKS ?? 5000)),
  waiting: () => waitingClaims(Number(process.env.BENCH_WAITING_N ?? 30_000)),
};

const chosen = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const names = chosen.length > 0 ? chosen : Object.keys(BENCHES);
console.log(
  `colony bench · node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? "cpu"} · ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
);
for (const name of names) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown bench '${name}'; known: ${Object.keys(BENCHES).join(", ")}`);
    process.exitCode = 2;
    continue;
  }
  printLines(await bench());
}
