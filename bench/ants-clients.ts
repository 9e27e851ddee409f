/**
 * The ants process of the ants bench (bench/ants-dispatch.ts): WebSocket clients of the
 * bench server. Commands on stdin, one per line, answered on stdout:
 *   echo C S B   C clients each in a closed loop of B-byte frames on /bench/echo (a raw
 *                ws echo) for S seconds after 0.5 s of warm-up
 *                -> `done <round trips> <seconds> <round trips with the warm-up>`
 *   ants C       C echo ants on /ws/ants (tags [bench]): each answers a TaskRequest with
 *                its echo and status COMPLETED, as the seed's samples do -> `ready`
 *   floor C      C such ants on the server's floor dispatcher (/bench/floor) -> `ready`
 *   quit
 * Usage: node bench/ants-clients.ts <server url> <ant token>
 */
import { createInterface } from "node:readline";
import WebSocket from "ws";

const [url, token] = process.argv.slice(2);
if (!url || !token) throw new Error("usage: node bench/ants-clients.ts <url> <token>");
const wsBase = url.replace(/^http/, "ws");
const sockets: WebSocket[] = [];

function open(target: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target, { headers, perMessageDeflate: false });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
    sockets.push(ws);
  });
}

async function echo(
  clients: number,
  seconds: number,
  bytes: number,
): Promise<[number, number, number]> {
  // Exactly `bytes` long: {"type":"bench","pad":""} is 25 bytes without its padding.
  const payload = JSON.stringify({ type: "bench", pad: "x".repeat(Math.max(0, bytes - 25)) });
  const conns = await Promise.all(
    Array.from({ length: clients }, () => open(`${wsBase}/bench/echo`)),
  );
  let count = 0;
  let total = 0;
  let stop = false;
  // Warm up for half a second, then count.
  let counting = false;
  const started = Promise.withResolvers<number>();
  for (const ws of conns) {
    ws.on("message", () => {
      total++;
      if (counting) count++;
      if (!stop) ws.send(payload);
    });
    ws.send(payload);
  }
  await new Promise((r) => setTimeout(r, 500));
  counting = true;
  started.resolve(performance.now());
  const t0 = await started.promise;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  stop = true;
  const elapsed = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 100));
  for (const ws of conns) ws.close();
  return [count, elapsed, total];
}

/** An echo ant: answers each TaskRequest with its echo and status COMPLETED. */
function answer(ws: WebSocket): void {
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as Record<string, unknown>;
    msg.status = "COMPLETED";
    ws.send(JSON.stringify(msg));
  });
}

async function ants(count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const ws = await open(`${wsBase}/ws/ants`, { authorization: token! });
      answer(ws);
      ws.send(JSON.stringify({ ant_id: `bench-${i}`, tags: ["bench"], methods: ["WEBSOCKET"] }));
    }),
  );
}

/** The same ants on the server's floor dispatcher (bench/ants-server.ts). */
async function floorAnts(count: number): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, async () => answer(await open(`${wsBase}/bench/floor`))),
  );
}

process.stdout.write("started\n");
for await (const line of createInterface({ input: process.stdin })) {
  const [command, ...args] = line.trim().split(/\s+/);
  if (command === "echo") {
    const [n, s, all] = await echo(Number(args[0]), Number(args[1]), Number(args[2]));
    process.stdout.write(`done ${n} ${s} ${all}\n`);
  } else if (command === "ants") {
    await ants(Number(args[0]));
    process.stdout.write("ready\n");
  } else if (command === "floor") {
    await floorAnts(Number(args[0]));
    process.stdout.write("ready\n");
  } else if (command === "quit") break;
}
for (const ws of sockets) ws.terminate();
process.exit(0);
