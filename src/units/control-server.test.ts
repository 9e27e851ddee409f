/**
 * The control service in-process, with a real unit manager, the real SHELL executor
 * (Perl spawner) and a real Unix socket: the line protocol's edges.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createShellExecutor } from "../executors/shell/shell-executor.ts";
import type { Executor } from "../core/executor.ts";
import { startControlServer, type ControlServer } from "./control-server.ts";
import { ControlClient } from "./control-client.ts";
import { UnitManager } from "./unit-manager.ts";
import { loadWorkTypes } from "./work-types.ts";

let dir: string;
let executor: Executor;
let manager: UnitManager;
let server: ControlServer;

async function raw(path: string) {
  const socket = net.connect(path);
  let buf = "";
  const waiters: Array<() => void> = [];
  socket.setEncoding("utf8");
  socket.on("data", (c: string) => {
    buf += c;
    for (const w of waiters.splice(0)) w();
  });
  let ended = false;
  socket.on("end", () => {
    ended = true;
    for (const w of waiters.splice(0)) w();
  });
  const line = async () => {
    while (!buf.includes("\n")) {
      if (ended) return null;
      await new Promise<void>((r) => waiters.push(r));
    }
    const i = buf.indexOf("\n");
    const l = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return l;
  };
  const greeting = await line();
  return {
    greeting,
    socket,
    line,
    async ask(request: string) {
      socket.write(request + "\n");
      return line();
    },
    rest: async () => {
      while (!ended) await new Promise<void>((r) => waiters.push(r));
      return buf;
    },
    close: () => socket.destroy(),
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "colony-control-"));
  executor = createShellExecutor({ killGraceMs: 2000 });
  manager = new UnitManager({
    nodeId: "node1",
    dataDir: dir,
    workTypes: loadWorkTypes(
      [
        { work_type: "cat", command: "cat" },
        { work_type: "count", command: "bash", params: '-c "for i in 1 2 3; do echo $i; done"' },
        { work_type: "sleepy", command: "sleep", params: "30" },
      ],
      { hasVerificationKey: false },
    ),
    peers: new Map(),
    executor,
    secretKey: Buffer.alloc(32, 7),
  });
  await manager.open();
  server = await startControlServer({
    nodeId: "node1",
    version: "test",
    manager,
    socketPath: join(dir, "control.sock"),
  });
});

after(async () => {
  await server.close();
  await manager.close();
  await executor.close({ killRunning: true });
  rmSync(dir, { recursive: true, force: true });
});

describe("control service", () => {
  it("answers every malformed request with ERROR: and keeps the connection usable", async () => {
    const c = await raw(server.socketPath);
    assert.equal(c.greeting, "Receptor Control, node node1");
    const bad = [
      "frobnicate",
      "{not json",
      '{"command": 7}',
      '{"subcommand":"list"}',
      "[1,2]",
      "work",
      "work explode",
      "work status",
      "work status nosuchid",
      "work results nosuchid",
      "work cancel nosuchid",
      "work release nosuchid extra",
      "work results abc notanumber",
      '{"command":"work","subcommand":"submit","node":"node1","worktype":3}',
      '{"command":"work","subcommand":"results","unitid":"x"}',
      "status please",
      "ping",
      "ping nowhere",
    ];
    for (const line of bad) {
      const answer = await c.ask(line);
      if (line === "ping nowhere") {
        assert.match(answer!, /"Success":false/);
        continue;
      }
      assert.match(answer!, /^ERROR: \S/, `${line} -> ${answer}`);
    }
    assert.equal(await c.ask("work status nosuchid"), "ERROR: unknown work unit nosuchid");
    assert.deepEqual(JSON.parse((await c.ask("work list"))!), {});
    c.close();
  });

  it("discards a line longer than 1 MiB with an error, then goes on", async () => {
    const c = await raw(server.socketPath);
    c.socket.write("y".repeat(1536 * 1024) + "\n");
    assert.match((await c.line())!, /^ERROR: request line longer than/);
    assert.deepEqual(JSON.parse((await c.ask("work list"))!), {});
    c.close();
  });

  it("takes CRLF lines and a last request without a newline", async () => {
    const c = await raw(server.socketPath);
    c.socket.write("work list\r\n");
    assert.equal(await c.line(), "{}");
    c.socket.end("status");
    assert.match((await c.line())!, /"NodeID":"node1"/);
    assert.equal(await c.line(), null, "closed after EOF");
  });

  it("submit reads the payload until the client half-closes; results follows to the end", async () => {
    const client = await ControlClient.connect(server.socketPath);
    const payload = Buffer.alloc(3 * 1024 * 1024, "z");
    const answer = await client.submit({ node: "localhost", worktype: "cat" }, payload);
    assert.deepEqual(Object.keys(answer), ["result", "unitid"]);
    assert.equal(answer.result, "Job Started");
    const r = await ControlClient.connect(server.socketPath);
    let n = 0;
    for await (const chunk of await r.results(answer.unitid)) n += (chunk as Buffer).length;
    assert.equal(n, payload.length);
    const from = await ControlClient.connect(server.socketPath);
    let tail = 0;
    for await (const chunk of await from.results(answer.unitid, payload.length - 10)) {
      tail += (chunk as Buffer).length;
    }
    assert.equal(tail, 10);
  });

  it("JSON replies are Go's: sorted keys, <>& escaped", async () => {
    const client = await ControlClient.connect(server.socketPath);
    const answer = await client.submit({ node: "node1", worktype: "count" }, undefined);
    await manager.waitFinal(answer.unitid);
    const c = await raw(server.socketPath);
    const status = (await c.ask(`work status ${answer.unitid}`))!;
    assert.equal(
      status,
      '{"Detail":"exit status 0","ExtraData":null,"State":2,"StateName":"Succeeded","StdoutSize":6,"WorkType":"count"}',
    );
    c.close();
  });

  it("cancel stops a running unit; release removes it; unknown ids are errors", async () => {
    const client = await ControlClient.connect(server.socketPath);
    const { unitid } = await client.submit({ node: "localhost", worktype: "sleepy" }, undefined);
    const c = await raw(server.socketPath);
    assert.equal(await c.ask(`work cancel ${unitid}`), `{"cancelled":"${unitid}"}`);
    const status = JSON.parse((await c.ask(`work status ${unitid}`))!) as { StateName: string };
    assert.equal(status.StateName, "Canceled");
    assert.equal(await c.ask(`work release ${unitid}`), `{"released":"${unitid}"}`);
    assert.equal(await c.ask(`work release ${unitid}`), `ERROR: unknown work unit ${unitid}`);
    c.close();
  });

  it("a submit that fails before its payload ends the connection (its payload is never read as commands)", async () => {
    const c = await raw(server.socketPath);
    c.socket.write(
      '{"command":"work","subcommand":"submit","node":"localhost","worktype":"nope"}\n',
    );
    c.socket.write("work release everything\n");
    assert.match((await c.line())!, /^ERROR: no work type 'nope'/);
    assert.equal(await c.line(), null);
  });
});
