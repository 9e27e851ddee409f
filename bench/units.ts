/**
 * Work units (issue 7), through real `colony server` processes and the control socket:
 *
 * - units/s: N units of a trivial work type (`true`), C at a time, each submitted with
 *   `work submit` and waited for with `work results` (which ends when the unit ends);
 *   baseline: the same command spawned directly by `xargs -P C` in the same run.
 * - results streaming: a unit writing `mb` MB is read with `work results`, on the node
 *   that ran it (local) and through a peer (remote: the local unit copies the peer's
 *   output as it comes); MB/s against `cat` of the same output file into this process.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ControlClient } from "../src/units/control-client.ts";
import { startServerProcess, type BenchServer } from "./server-process.ts";
import { xargsRate, type BenchLine } from "./support.ts";

async function runUnit(socket: string, request: Record<string, string>): Promise<number> {
  const client = await ControlClient.connect(socket);
  const { unitid } = await client.submit(request, undefined);
  const reader = await ControlClient.connect(socket);
  let bytes = 0;
  for await (const chunk of await reader.results(unitid)) bytes += (chunk as Buffer).length;
  return bytes;
}

async function unitsPerSecond(socket: string, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        await runUnit(socket, { node: "localhost", worktype: "noop" });
      }
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

/** MB/s of `cat file` read through a pipe by this process (the consumer results has). */
async function catRate(file: string): Promise<{ mbps: number; bytes: number }> {
  const started = performance.now();
  const child = spawn("cat", [file], { stdio: ["ignore", "pipe", "inherit"] });
  let bytes = 0;
  for await (const chunk of child.stdout) bytes += (chunk as Buffer).length;
  return { mbps: bytes / 1e6 / ((performance.now() - started) / 1000), bytes };
}

async function timedResults(
  socket: string,
  run: () => Promise<string>,
): Promise<{ mbps: number; bytes: number; id: string }> {
  const started = performance.now();
  const id = await run();
  const reader = await ControlClient.connect(socket);
  let bytes = 0;
  for await (const chunk of await reader.results(id)) bytes += (chunk as Buffer).length;
  return { mbps: bytes / 1e6 / ((performance.now() - started) / 1000), bytes, id };
}

export async function unitsBench(n: number, concurrency: number, mb: number): Promise<BenchLine[]> {
  const lines: BenchLine[] = [];
  const size = mb * 1_000_000;
  const bigType = `  - work_type: big\n    command: head\n    params: "-c ${size} /dev/zero"\n`;
  const bar = await startServerProcess(
    `node_id: bar\nwork_types:\n  - work_type: noop\n    command: "true"\n${bigType}`,
  );
  let foo: BenchServer | undefined;
  try {
    foo = await startServerProcess(
      `node_id: foo\nwork_types:\n  - work_type: noop\n    command: "true"\n${bigType}` +
        `peers:\n  - node_id: bar\n    url: ${bar.url}\n    token: ${bar.token}\nunits:\n  remote_poll: 200ms\n`,
    );
    const socket = join(foo.dataDir, "control.sock");

    // -- units/s -------------------------------------------------------------------------
    await unitsPerSecond(socket, Math.min(50, n), concurrency); // warm-up
    const rate = await unitsPerSecond(socket, n, concurrency);
    const direct = xargsRate(n, concurrency, "true");
    lines.push({
      name: `units/s (${n} × true, ${concurrency} at a time)`,
      value: `${rate.toFixed(0)}/s`,
      baseline: `xargs -P ${concurrency} ${direct.toFixed(0)}/s`,
      ratio: rate / direct,
    });

    // -- results streaming ---------------------------------------------------------------
    const local = await timedResults(socket, async () => {
      const c = await ControlClient.connect(socket);
      const { unitid } = await c.submit({ node: "localhost", worktype: "big" }, undefined);
      return unitid;
    });
    if (local.bytes !== size) throw new Error(`local results gave ${local.bytes} of ${size} bytes`);
    // Read again once finished: the replay rate, without the unit's own writing.
    const replay = await timedResults(socket, async () => local.id);
    const cat = await catRate(join(foo.dataDir, "units", local.id, "stdout"));
    lines.push({
      name: `work results, ${mb} MB, local (live)`,
      value: `${local.mbps.toFixed(0)} MB/s`,
      baseline: `cat ${cat.mbps.toFixed(0)} MB/s`,
      ratio: local.mbps / cat.mbps,
    });
    lines.push({
      name: `work results, ${mb} MB, local (done)`,
      value: `${replay.mbps.toFixed(0)} MB/s`,
      baseline: `cat ${cat.mbps.toFixed(0)} MB/s`,
      ratio: replay.mbps / cat.mbps,
    });
    const remote = await timedResults(socket, async () => {
      const c = await ControlClient.connect(socket);
      const { unitid } = await c.submit({ node: "bar", worktype: "big" }, undefined);
      return unitid;
    });
    if (remote.bytes !== size) {
      throw new Error(`remote results gave ${remote.bytes} of ${size} bytes`);
    }
    lines.push({
      name: `work results, ${mb} MB, remote (live)`,
      value: `${remote.mbps.toFixed(0)} MB/s`,
      baseline: `cat ${cat.mbps.toFixed(0)} MB/s`,
      ratio: remote.mbps / cat.mbps,
    });
    lines.push({ name: "  every byte arrived", value: `${size} bytes local and remote` });
  } finally {
    await foo?.close();
    await bar.close();
  }
  return lines;
}
