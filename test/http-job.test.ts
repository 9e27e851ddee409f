/**
 * The seed's `http-job` (GET -> POST -> PUT -> DELETE chained by on_completed) run by
 * `colony run` as a user would, against a local JSON server standing in for
 * jsonplaceholder.typicode.com (only the URLs' prefix is changed).
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runCli, tempDir } from "./support/cli.ts";

interface Call {
  method: string;
  path: string;
  body: string;
  contentType?: string;
}

/** jsonplaceholder's /todos, in memory. */
async function startJsonServer(): Promise<{ url: string; calls: Call[]; server: Server }> {
  const calls: Call[] = [];
  const todos = new Map<number, Record<string, unknown>>([
    [1, { userId: 1, id: 1, title: "delectus aut autem", completed: false }],
  ]);
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      calls.push({
        method: req.method ?? "",
        path: req.url ?? "",
        body,
        ...(req.headers["content-type"] ? { contentType: req.headers["content-type"] } : {}),
      });
      const json = (status: number, value: unknown) =>
        res
          .writeHead(status, { "content-type": "application/json; charset=utf-8" })
          .end(JSON.stringify(value, null, 2));
      const m = /^\/todos(?:\/(\d+))?$/.exec(req.url ?? "");
      if (!m) return json(404, {});
      const id = m[1] === undefined ? undefined : Number(m[1]);
      const input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      if (req.method === "GET" && id !== undefined) return json(200, todos.get(id) ?? {});
      if (req.method === "POST" && id === undefined) return json(201, { ...input, id: 201 });
      if (req.method === "PUT" && id !== undefined) return json(200, { ...input, id });
      if (req.method === "DELETE" && id !== undefined) return json(200, {});
      return json(404, {});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    server,
  };
}

describe("the seed's http-job", () => {
  const dir = tempDir("colony-http-job-");
  let api: Awaited<ReturnType<typeof startJsonServer>>;
  before(async () => {
    api = await startJsonServer();
  });
  after(async () => {
    api.server.closeAllConnections();
    await new Promise((resolve) => api.server.close(resolve));
    dir.remove();
  });

  it("calls GET, POST, PUT and DELETE in order and completes (colony run)", async () => {
    const seed = readFileSync(new URL("./fixtures/seed/http-job.yaml", import.meta.url), "utf8");
    const file = join(dir.path, "http-job.yaml");
    writeFileSync(file, seed.replaceAll("https://jsonplaceholder.typicode.com", api.url));
    const r = await runCli(["run", file, "--data-dir", join(dir.path, "data")]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      api.calls.map((c) => `${c.method} ${c.path}`),
      ["GET /todos/1", "POST /todos", "PUT /todos/1", "DELETE /todos/1"],
    );
    assert.equal(api.calls[1]!.contentType, "application/json");
    // The response bodies are the tasks' output, streamed like a process's.
    assert.match(r.stdout, /"title": "delectus aut autem"/);
  });
});
