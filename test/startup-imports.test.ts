/**
 * What a command or `import "colony"` loads before it does its work: the packages only
 * some uses need (typebox for the server's schemas and the ant protocol, `ws`, the Redis
 * and PostgreSQL clients, `yaml`) are loaded by those uses, not by every start. Loading
 * them all made each client command take ~0.5 s (bench/README.md, "CLI start"). Each case
 * runs a real child process with a module hook that records every module it loads.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BIN, ROOT, tempDir } from "./support/cli.ts";

const HOOK = `
import { registerHooks } from "node:module";
import { writeFileSync } from "node:fs";
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
process.on("exit", () => writeFileSync(process.env.LOADED_FILE, loaded.join("\\n")));
`;

/** The npm packages a child process loaded, by name. */
function packagesLoaded(args: string[], dir: string, name: string): Set<string> {
  const hook = join(dir, "record-loads.mjs");
  writeFileSync(hook, HOOK);
  const file = join(dir, `${name}.loaded`);
  const r = spawnSync(process.execPath, ["--import", hook, ...args], {
    cwd: ROOT,
    env: { ...process.env, LOADED_FILE: file, NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.error, undefined, String(r.error));
  const packages = new Set<string>();
  for (const url of readFileSync(file, "utf8").split("\n")) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) packages.add(m[1]!);
  }
  assert.ok(readFileSync(file, "utf8").includes("/src/"), `${name}: no colony module loaded`);
  return packages;
}

function assertNone(loaded: Set<string>, unwanted: string[], what: string): void {
  const found = unwanted.filter((p) => loaded.has(p));
  assert.deepEqual(found, [], `${what} loaded ${found.join(", ")}`);
}

describe("what each start loads", () => {
  let dir: { path: string; remove(): void };
  let closedPort: number;
  before(async () => {
    dir = tempDir();
    // A port nothing listens on: the client command fails fast, after its full start.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    closedPort = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
  });
  after(() => dir.remove());

  it("import of the package entry (startColony, the client, the worker SDK) loads no server, ant or store-driver package", () => {
    const loaded = packagesLoaded(
      ["--input-type=module", "-e", `await import(${JSON.stringify(join(ROOT, "src/index.ts"))})`],
      dir.path,
      "entry",
    );
    assertNone(loaded, ["typebox", "ws", "ioredis", "pg", "fastify", "prom-client"], "the entry");
  });

  it("a client command (colony jobs list) loads neither typebox nor yaml nor a store driver", () => {
    const args = [BIN, "jobs", "list", "--server", `http://127.0.0.1:${closedPort}`];
    const loaded = packagesLoaded(args, dir.path, "jobs-list");
    assertNone(loaded, ["typebox", "yaml", "ws", "ioredis", "pg"], "colony jobs list");
  });

  it("colony run on the embedded store loads no PostgreSQL, Redis or WebSocket client", () => {
    const job = join(dir.path, "one.yaml");
    writeFileSync(job, "job_type: one\ntasks:\n  - task_type: a\n    script: ['true']\n");
    const args = [BIN, "run", job, "--data-dir", join(dir.path, "data")];
    const loaded = packagesLoaded(args, dir.path, "run");
    assertNone(loaded, ["pg", "ioredis", "ws", "typebox"], "colony run");
  });
});
