/**
 * Output streaming: a process job writing 200 MB to stdout, followed through
 * `GET /jobs/{id}/logs` by 10 clients attached before it starts. Every client must get
 * every byte; each client's MB/s (bytes / time from start to its last byte) is compared
 * with `cat` of the same output file to /dev/null, measured in the same run. A second
 * line replays the finished output to 10 new clients at once (no writer to wait for).
 *
 * The server is a real `colony server` child process; the clients are this process.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { Agent, get } from "node:http";
import { join } from "node:path";
import { startServerProcess, send, type BenchServer } from "./server-process.ts";
import type { BenchLine } from "./support.ts";

const MB = 1e6;

/** Follows the job's logs; resolves with the byte count and when the last byte came. */
function follow(server: BenchServer, id: string): Promise<{ bytes: number; endedAt: number }> {
  return new Promise((resolve, reject) => {
    const req = get(
      `${server.url}/jobs/${id}/logs`,
      { headers: { authorization: server.token }, agent: false },
      (res) => {
        if (res.statusCode !== 200) reject(new Error(`logs: ${res.statusCode}`));
        let bytes = 0;
        res.on("data", (c: Buffer) => (bytes += c.length));
        res.on("error", reject);
        res.on("end", () => resolve({ bytes, endedAt: performance.now() }));
      },
    );
    req.on("error", reject);
  });
}

function catRate(path: string, bytes: number): number {
  spawnSync("cat", [path], { stdio: ["ignore", "ignore", "ignore"] }); // into the page cache
  const started = performance.now();
  const r = spawnSync("bash", ["-c", `cat '${path}' > /dev/null`], { stdio: "ignore" });
  if (r.status !== 0) throw new Error(`cat failed with ${r.status}`);
  return bytes / MB / ((performance.now() - started) / 1000);
}

export async function outputStream(mb = 200, clients = 10): Promise<BenchLine[]> {
  const bytes = mb * MB;
  const server = await startServerProcess("jobs_api:\n  default_timeout: 10m\n");
  const agent = new Agent({ keepAlive: true });
  try {
    const created = await send(agent, `${server.url}/jobs`, {
      token: server.token,
      json: { command: `head -c ${bytes} /dev/zero | tr '\\0' x` },
    });
    if (created.status !== 201) throw new Error(`create: ${created.status} ${created.body}`);
    const id = (JSON.parse(created.body) as { id: string }).id;

    // Attached before the start: each client sees the output from its first byte.
    const followers = Array.from({ length: clients }, () => follow(server, id));
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    const put = await send(agent, `${server.url}/jobs/${id}`, {
      method: "PUT",
      token: server.token,
      json: { status: "started" },
    });
    if (put.status !== 200) throw new Error(`start: ${put.status} ${put.body}`);
    const live = await Promise.all(followers);
    for (const r of live) {
      if (r.bytes !== bytes) throw new Error(`a follower got ${r.bytes} of ${bytes} bytes`);
    }
    const job = JSON.parse(
      (await send(agent, `${server.url}/jobs/${id}`, { token: server.token })).body,
    ) as { reasonForExit: string };
    if (job.reasonForExit !== "process finished") {
      throw new Error(`the writer ended with '${job.reasonForExit}'`);
    }
    const liveRates = live.map((r) => bytes / MB / ((r.endedAt - started) / 1000));

    // Replay of the finished output to as many clients at once.
    const replayStart = performance.now();
    const replay = await Promise.all(Array.from({ length: clients }, () => follow(server, id)));
    for (const r of replay) {
      if (r.bytes !== bytes) throw new Error(`a replay client got ${r.bytes} of ${bytes} bytes`);
    }
    const replayRates = replay.map((r) => bytes / MB / ((r.endedAt - replayStart) / 1000));

    const units = join(server.dataDir, "units");
    const [unit] = readdirSync(units);
    const cat = catRate(join(units, unit!, "stdout"), bytes);
    const min = (xs: number[]) => Math.min(...xs);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    /** Every client's bytes over the time until the last one finished. */
    const total = (rs: Array<{ bytes: number; endedAt: number }>, from: number) =>
      rs.reduce((a, r) => a + r.bytes, 0) /
      MB /
      ((Math.max(...rs.map((r) => r.endedAt)) - from) / 1000);
    return [
      {
        name: `/jobs logs, ${mb} MB live, ${clients} clients`,
        value: `${mean(liveRates).toFixed(0)} MB/s per client (min ${min(liveRates).toFixed(0)}, total ${total(live, started).toFixed(0)})`,
        baseline: `cat ${cat.toFixed(0)} MB/s`,
        ratio: mean(liveRates) / cat,
      },
      {
        name: `/jobs logs, ${mb} MB replay, ${clients} clients`,
        value: `${mean(replayRates).toFixed(0)} MB/s per client (min ${min(replayRates).toFixed(0)}, total ${total(replay, replayStart).toFixed(0)})`,
        baseline: `cat ${cat.toFixed(0)} MB/s`,
        ratio: mean(replayRates) / cat,
      },
      {
        name: "  every client got every byte",
        value: `${clients * 2} × ${bytes} bytes`,
      },
    ];
  } finally {
    agent.destroy();
    await server.close();
  }
}
