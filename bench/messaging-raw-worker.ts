/**
 * The raw worker of bench/messaging-roundtrip.ts: reads a request stream through the
 * consumer group colony-workers, XADDs each payload to the reply stream and XACKs it:
 * the least a request/reply worker on Redis streams does (no JSON, no checks).
 * Usage: node bench/messaging-raw-worker.ts <request stream> <reply stream>
 */
import { Redis } from "ioredis";

const [req, rep] = process.argv.slice(2) as [string, string];
const url = process.env.COLONY_REDIS_URL ?? "redis://127.0.0.1:6379";
const reader = new Redis(url);
const writer = new Redis(url);
try {
  await writer.xgroup("CREATE", req, "colony-workers", "$", "MKSTREAM");
} catch {
  // the group exists
}
let running = true;
process.on("SIGTERM", () => {
  running = false;
});
console.log("raw worker ready");
while (running) {
  const got = (await reader.xreadgroup(
    "GROUP",
    "colony-workers",
    "raw",
    "COUNT",
    10,
    "BLOCK",
    200,
    "STREAMS",
    req,
    ">",
  )) as [string, [string, string[]][]][] | null;
  for (const [, entries] of got ?? []) {
    for (const [id, fields] of entries) {
      await writer.xadd(rep, "*", "payload", fields[1]!);
      await writer.xack(req, "colony-workers", id);
    }
  }
}
reader.disconnect();
writer.disconnect();
process.exit(0);
