/**
 * examples/workers/echo-worker.ts (the WebSocket worker SDK) run as its own process, as
 * its header says, against a real server: it completes a WEBSOCKET task with its tag.
 * (examples/workers/messaging-worker*.{ts,py} run in test/messaging-job.test.ts.)
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
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
