/**
 * Bad input against the real server (real socket, real SQLite store): oversized bodies,
 * malformed JSON, wrong content types, unknown routes, oversized headers and slow
 * clients each get a clear answer (or a closed connection) and change nothing in the
 * store; the server keeps serving everyone else.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { http, roleTestRoutes, testConfig } from "./support/server-harness.ts";

interface ErrorJson {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

describe("server refuses bad input without harm", () => {
  const dir = tempDir("colony-bad-input-");
  let server: RunningServer;
  let admin: string;
  let counts: () => Promise<Record<string, number>>;
  let before0: Record<string, number>;
  const sockets: Socket[] = [];

  before(async () => {
    server = await startServer(testConfig(dir.path, { yaml: "body_limit: 4096\n" }), {
      log: () => undefined,
      routes: [...ALL_ROUTES, roleTestRoutes],
    });
    admin = readFileSync(server.adminTokenFile!, "utf8").trim();
    const { store } = server.runtime;
    counts = async () => ({
      tokens: (await store.listTokens()).length,
      jobs: (await store.listJobRequests({ limit: 500 })).items.length,
      definitions: (await store.listDefinitions()).length,
    });
    before0 = await counts();
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  const post = (path: string, body: string | Buffer, contentType = "application/json") =>
    http(`${server.url}${path}`, {
      method: "POST",
      body,
      headers: { authorization: admin, "content-type": contentType },
    });

  it("answers 413 to a body over body_limit, naming the limit", async () => {
    const big = JSON.stringify({ role: "reader", name: "x".repeat(10_000) });
    for (const path of ["/api/tokens", "/api/job-requests"]) {
      const res = await post(path, big);
      assert.equal(res.status, 413, `${path}: ${res.text}`);
      const body = res.json<ErrorJson>();
      assert.equal(body.error.code, "COLONY_BODY_TOO_LARGE");
      assert.match(body.error.message, /4096 bytes/);
    }
    // Chunked, with no Content-Length to refuse it up front: cut off at the limit.
    const chunked = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(server.url).port), "127.0.0.1");
      sockets.push(socket);
      let text = "";
      socket.on("data", (c: Buffer) => (text += c.toString()));
      socket.on("error", reject);
      socket.on("close", () => resolve(text));
      socket.write(
        `POST /api/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\n` +
          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
      );
      const chunk = "x".repeat(1000);
      for (let i = 0; i < 10; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      socket.end("0\r\n\r\n");
    });
    assert.match(chunked, /^HTTP\/1\.1 413/);
  });

  it("answers 400 with line, column and position to malformed JSON", async () => {
    const res = await post("/api/tokens", '{\n  "role": "reader",\n  "name": \n}');
    assert.equal(res.status, 400);
    const body = res.json<ErrorJson>();
    assert.equal(body.error.code, "COLONY_MALFORMED_JSON");
    assert.match(body.error.message, /line 4, column 1 \(position 33\): Unexpected token .\}.$/);
    assert.deepEqual(body.error.details, { position: 33, line: 4, column: 1 });

    const truncated = await post("/api/job-requests", '{"definition": "job_type: x');
    assert.equal(truncated.status, 400);
    assert.match(truncated.json<ErrorJson>().error.message, /position 27/);

    const empty = await post("/api/tokens", "");
    assert.equal(empty.status, 400);
    assert.match(empty.text, /the body is empty/);

    const poisoned = await post(
      "/api/tokens",
      '{"role": "reader", "name": "x", "__proto__": {"a": 1}}',
    );
    assert.equal(poisoned.status, 400);
    assert.match(poisoned.text, /__proto__/);

    const wrongShape = await post("/api/tokens", "[1, 2]");
    assert.equal(wrongShape.status, 400);
    assert.equal(wrongShape.json<ErrorJson>().error.code, "COLONY_VALIDATION");
  });

  it("answers 415 to a content type it does not take", async () => {
    for (const type of ["application/xml", "application/x-www-form-urlencoded", "image/png"]) {
      const res = await post("/api/tokens", "role=reader&name=x", type);
      assert.equal(res.status, 415, type);
      const body = res.json<ErrorJson>();
      assert.equal(body.error.code, "COLONY_UNSUPPORTED_MEDIA_TYPE");
      assert.match(body.error.message, /application\/json/);
    }
    // YAML is text, accepted by the parser, but /api/tokens wants an object.
    const yaml = await post("/api/tokens", "role: reader\nname: x\n", "application/yaml");
    assert.equal(yaml.status, 400);
    assert.match(
      yaml.json<ErrorJson>().error.message,
      /^body: must be object; this route takes a JSON object \(Content-Type: application\/json\), not application\/yaml$/,
    );
    // A YAML job sent to submit: where YAML goes instead.
    const job = await post("/api/job-requests", "job_type: x\ntasks: []\n", "text/yaml");
    assert.equal(job.status, 400);
    assert.match(
      job.json<ErrorJson>().error.message,
      /not text\/yaml: save a YAML job definition with POST \/api\/job-definitions, then submit/,
    );
  });

  it("answers unknown routes and methods with 404 JSON, ids with 404", async () => {
    for (const [method, path] of [
      ["GET", "/api/nope"],
      ["GET", "/nope"], // `/` is the dashboard
      ["GET", "/assets/nope.js"],
      ["PATCH", "/api/tokens"],
      ["GET", "/api/../../etc/passwd"],
    ] as const) {
      const res = await http(`${server.url}${path}`, { method });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.match(res.headers["content-type"] ?? "", /application\/json/);
      assert.equal(res.json<ErrorJson>().error.code, "COLONY_NOT_FOUND");
    }
    const unknownToken = await http(`${server.url}/api/tokens/tok_zzzzzzzz`, {
      method: "DELETE",
      headers: { authorization: admin },
    });
    assert.equal(unknownToken.status, 404);
  });

  it("closes a connection whose headers are too large, and keeps serving", async () => {
    const res = await http(`${server.url}/api/health`, {
      headers: { "x-big": "y".repeat(64 * 1024) },
    }).catch((e: Error) => e);
    assert.ok(res instanceof Error || res.status === 431, "refused");
    assert.equal((await http(`${server.url}/api/health`)).status, 200);
  });

  it("serves others while slow clients stall mid-headers and mid-body", async () => {
    const port = Number(new URL(server.url).port);
    const open = (text: string) =>
      new Promise<Socket>((resolve, reject) => {
        const socket = connect(port, "127.0.0.1", () => {
          socket.write(text);
          resolve(socket);
        });
        socket.on("error", reject);
        sockets.push(socket);
      });
    const stalled = [];
    for (let i = 0; i < 20; i++) {
      stalled.push(await open("POST /api/tokens HTTP/1.1\r\nHost: x\r\nContent-Ty"));
      stalled.push(
        await open(
          `POST /api/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin}\r\n` +
            'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"role": "rea',
        ),
      );
    }
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        http(`${server.url}/test/reader`, { headers: { authorization: admin } }),
      ),
    );
    assert.ok(answers.every((a) => a.status === 200));
    assert.ok(Date.now() - started < 2000, "not held up by the stalled clients");
    for (const socket of stalled) socket.destroy();
  });

  it("changed nothing in the store", async () => {
    assert.deepEqual(await counts(), before0);
    assert.equal((await http(`${server.url}/api/health`)).status, 200);
  });
});
