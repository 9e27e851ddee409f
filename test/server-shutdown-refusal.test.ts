/**
 * A request that reaches a closing server is refused with colony's own 503: code
 * COLONY_SHUTTING_DOWN, a message that says nothing was done and to send it again, and
 * Retry-After; a request already in progress finishes.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, describe, it } from "node:test";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { testConfig } from "./support/server-harness.ts";

describe("a server that is shutting down", () => {
  const dir = tempDir("colony-closing-");
  after(() => dir.remove());

  it("finishes the request in progress and answers the next one 503 COLONY_SHUTTING_DOWN", async () => {
    const config = testConfig(dir.path, { overrides: { insecureNoAuth: true } });
    const server = await startServer(config, { routes: ALL_ROUTES, log: () => undefined });
    const { port } = new URL(server.url);
    const socket = connect(Number(port), "127.0.0.1");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (received += chunk));
    const ended = new Promise((resolve) => socket.once("close", resolve));
    await new Promise((resolve) => socket.once("connect", resolve));
    // A job submitted with its body still to come when the server starts to close...
    const body = JSON.stringify({
      definition: "job_type: closing\ntasks:\n- task_type: t\n  script: [true]\n",
    });
    socket.write(
      `POST /api/job-requests HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`,
    );
    await new Promise((r) => setTimeout(r, 100));
    const closed = server.close({ graceMs: 2000 });
    await new Promise((r) => setTimeout(r, 200));
    // ...then its body, and right behind it on the same connection another request.
    socket.write(body + "GET /api/job-requests HTTP/1.1\r\nhost: x\r\n\r\n");
    await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
    socket.destroy();
    await closed;
    const responses = received.split(/(?=HTTP\/1\.1 )/);
    assert.match(responses[0] ?? "", /^HTTP\/1\.1 201 /, "the request in progress finished");
    const refused = responses[1] ?? "";
    assert.match(refused, /^HTTP\/1\.1 503 /, received);
    assert.match(refused, /\r\nretry-after: 5\r\n/i);
    assert.match(refused, /"code":"COLONY_SHUTTING_DOWN"/);
    assert.match(refused, /nothing of this request was done; send it again/);
  });
});
