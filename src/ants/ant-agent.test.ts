/**
 * The agent against a stand-in server (a bare WebSocket server speaking the agent frames):
 * what only an in-process agent lets a test hold still, such as a cancel that arrives
 * while a task's dependency files are still downloading.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { WebSocketServer, type WebSocket } from "ws";
import { AntAgent, RECONNECT_MAX_MS } from "./ant-agent.ts";
import { DEFAULT_RECONNECT_GRACE_MS } from "./remote-ant-executor.ts";
import { buildTaskRequest, taskDefinition } from "./task-request.ts";

describe("colony ant agent (stand-in server)", () => {
  const dir = mkdtempSync(join(tmpdir(), "colony-agent-unit-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("retries a lost server within the server's default reconnect grace", () => {
    // A restarted server gives an agent's tasks the grace to come back: the agent's
    // longest wait (with jitter, at most RECONNECT_MAX_MS) must leave room in it.
    assert.ok(
      RECONNECT_MAX_MS <= DEFAULT_RECONNECT_GRACE_MS / 2,
      `${RECONNECT_MAX_MS} ms between attempts against a ${DEFAULT_RECONNECT_GRACE_MS} ms grace`,
    );
  });

  it(
    "a cancel during the dependency downloads ends the task CANCELLED without running it",
    { timeout: 20_000 },
    async () => {
      // A file server that starts an answer and never finishes it.
      const hanging: ServerResponse[] = [];
      let asked: () => void = () => undefined;
      const askedFor = new Promise<void>((resolve) => (asked = resolve));
      const files = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        res.write("partial");
        hanging.push(res);
        asked();
      });
      await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
      const filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;

      const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
      await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
      const frames: Record<string, unknown>[] = [];
      let socket: WebSocket | undefined;
      let replied: (frame: Record<string, unknown>) => void = () => undefined;
      const reply = new Promise<Record<string, unknown>>((resolve) => (replied = resolve));
      wss.on("connection", (ws) => {
        socket = ws;
        ws.on("message", (data) => {
          const frame = JSON.parse(String(data)) as Record<string, unknown>;
          frames.push(frame);
          if (frames.length === 1) {
            ws.send(JSON.stringify({ type: "registered", ant_id: "unit-ant", resume: {} }));
          } else if (typeof frame.status === "string") replied(frame);
        });
      });
      const marker = join(dir, "ran");
      const agent = new AntAgent({
        server: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
        token: "unused",
        antId: "unit-ant",
        dataDir: join(dir, "ant"),
        reconnectMinMs: 50,
      });
      try {
        await agent.start();
        const request = buildTaskRequest({
          executionId: "Dl0wnL0d",
          method: "SHELL",
          task: taskDefinition("t", { script: [`touch ${marker}`] }),
          env: {},
          variables: {},
          unitDir: "",
          jobRequestId: 1,
          jobType: "unit",
          movesArtifacts: true,
          artifactDownloads: [{ name: "big.bin", url: `${filesUrl}/big`, executable: false }],
        });
        socket!.send(JSON.stringify(request));
        await askedFor; // the download has begun and hangs
        socket!.send(JSON.stringify({ type: "cancel", task_execution_id: "Dl0wnL0d" }));
        const answer = await reply;
        assert.equal(answer.status, "CANCELLED", JSON.stringify(answer));
        assert.equal(answer.task_execution_id, "Dl0wnL0d");
        assert.equal(existsSync(marker), false, "the script never ran");
      } finally {
        await agent.close({ leaveRunning: true });
        for (const res of hanging) res.destroy();
        await new Promise<void>((resolve) => files.close(() => resolve()));
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      }
    },
  );
});
