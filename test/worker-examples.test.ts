/**
 * examples/workers/echo-worker.ts (the WebSocket worker SDK) run as its own process, as
 * its header says, against a real server: it completes a WEBSOCKET task with its tag.
 * (examples/workers/messaging-worker*.{ts,py} run in test/messaging-job.test.ts.)
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { ColonyError, startWebSocketWorker } from "../src/index.ts";
import { ROOT } from "./support/cli.ts";
import { startAntServer, waitForAnt, type AntTestServer } from "./support/ants.ts";

describe("worker SDK examples", () => {
  let s: AntTestServer;
  let worker: ChildProcess | undefined;

  before(async () => {
    s = await startAntServer();
  });
  after(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((resolve) => worker!.once("exit", resolve));
      worker.kill("SIGTERM");
      await exited;
    }
    await s.close();
  });

  it("a server that is not a URL is refused when the worker is started, not later", () => {
    assert.throws(
      () => startWebSocketWorker({ server: "colony-host", token: "t", handle: () => ({}) }),
      {
        name: "TypeError",
        message:
          "'colony-host' is not a URL of a colony server; write e.g. http://host:7777 or ws://host:7777",
      },
    );
  });

  it("a worker whose token the server refuses: ready rejects and it stops retrying", async () => {
    const logs: string[] = [];
    const w = startWebSocketWorker({
      server: s.url,
      token: "not-a-token",
      antId: "refused",
      handle: () => ({}),
      log: (line) => logs.push(line),
      reconnectMinMs: 10,
    });
    const settled = Promise.race([
      w.ready,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error("ready did not settle within 10 s")), 10_000).unref(),
      ),
    ]);
    await assert.rejects(settled, (e: unknown) => {
      assert.ok(e instanceof ColonyError, String(e));
      assert.equal(e.code, "COLONY_ANT_REFUSED");
      assert.match(e.message, /answered 401; check the token \(role ant\)/);
      return true;
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(logs.filter((l) => /answered 401/.test(l)).length, 1, logs.join("\n"));
    assert.ok(!logs.some((l) => /reconnecting/.test(l)), logs.join("\n"));
    await w.close();
  });

  it("echo-worker.ts completes WEBSOCKET tasks tagged echo, with the context it returns", async () => {
    worker = spawn(process.execPath, ["examples/workers/echo-worker.ts"], {
      cwd: ROOT,
      env: { ...process.env, COLONY_SERVER: s.url, COLONY_TOKEN: s.antToken },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    worker.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    worker.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    await waitForAnt(s, "echo-worker").catch((error: Error) => {
      throw new Error(`${error.message}: ${out}`);
    });
    const job = await s.submit(
      [
        "job_type: echo",
        "tasks:",
        "- task_type: say",
        "  method: WEBSOCKET",
        "  tags: [echo]",
        "  variables: {Message: hello ants}",
        "  on_completed: show",
        "- task_type: show",
        "  script: ['echo the worker said {{.echoed}}']",
      ].join("\n"),
    );
    const { job: done, tasks } = await s.finished(job.id);
    assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
    assert.deepEqual(tasks[0]!.context, { echoed: "hello ants", by: "echo-worker" });
  });
});
