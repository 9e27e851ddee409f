import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ExecutionRequest, Executor } from "../../core/executor.ts";
import type { Method, TaskDefinition } from "../../core/job-definition.ts";
import { taskDefinition } from "../../ants/task-request.ts";
import { executorConformance, quickLine, readAll } from "../executor-conformance.ts";
import { makeTestCerts } from "../../../test/support/tls-certs.ts";
import { createHttpExecutor } from "./http-executor.ts";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

/**
 * A local HTTP server standing in for the APIs tasks call: /quick/<id>, /fail/<status>,
 * /long (answers the headers and a line, then never ends), /chatty/<n> (n lines over
 * about a second), /echo (what it received, as JSON).
 */
async function startApi(): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
      const path = new URL(req.url ?? "/", "http://x").pathname;
      const parts = path.split("/").filter(Boolean);
      if (parts[0] === "quick") {
        res.writeHead(200, { "content-type": "text/plain" }).end(`${quickLine(parts[1]!)}\n`);
      } else if (parts[0] === "fail") {
        res.writeHead(Number(parts[1]), { "content-type": "text/plain" }).end("nope\n");
      } else if (parts[0] === "long") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("grandchild 0\n");
      } else if (parts[0] === "redirect") {
        // /redirect/<status>/<target path>
        res.writeHead(Number(parts[1]), { location: `/${parts.slice(2).join("/")}` }).end();
      } else if (parts[0] === "chatty") {
        const n = Number(parts[1]);
        res.writeHead(200, { "content-type": "text/plain" });
        let i = 0;
        const tick = setInterval(
          () => {
            i++;
            res.write(`line ${i}\n`);
            if (i >= n) {
              clearInterval(tick);
              res.end();
            }
          },
          Math.max(5, Math.floor(1000 / n)),
        );
      } else {
        res.writeHead(201, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ method: req.method, url: req.url, body, id: 101 }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

function stopApi(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function requester(root: string) {
  return (id: string, method: Method, parts: Partial<TaskDefinition>): ExecutionRequest => ({
    executionId: id,
    method,
    task: taskDefinition("call", { method, ...parts }),
    env: {},
    variables: Object.fromEntries(Object.entries(parts.variables ?? {}).map(([k, v]) => [k, v])),
    unitDir: join(root, "units", id),
  });
}

executorConformance("http (local slow server)", async () => {
  const api = await startApi();
  const root = await mkdtemp(join(tmpdir(), "colony-http-"));
  const request = requester(root);
  return {
    executor: createHttpExecutor(),
    requests: {
      quick: (id) => request(id, "HTTP_GET", { url: `${api.url}/quick/${id}` }),
      failing: (id, code) => request(id, "HTTP_GET", { url: `${api.url}/fail/${500 + code}` }),
      failingExitCode: (code) => 500 + code,
      long: (id) => request(id, "HTTP_GET", { url: `${api.url}/long?id=${id}` }),
      chatty: (id, lines) => request(id, "HTTP_GET", { url: `${api.url}/chatty/${lines}` }),
    },
    async teardown() {
      await stopApi(api.server);
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe("http executor", () => {
  let api: Awaited<ReturnType<typeof startApi>>;
  let root: string;
  let executor: Executor;
  let request: ReturnType<typeof requester>;
  let n = 0;
  const id = () => `http-${++n}`;

  before(async () => {
    api = await startApi();
    root = await mkdtemp(join(tmpdir(), "colony-http-"));
    request = requester(root);
    executor = createHttpExecutor();
  });
  after(async () => {
    await executor.close();
    await stopApi(api.server);
    await rm(root, { recursive: true, force: true });
  });

  it("POSTs the task's variables as JSON with its headers and query, body and status in the context", async () => {
    const result = await executor.run(
      request(id(), "HTTP_POST_JSON", {
        url: `${api.url}/todos`,
        headers: { "X-Trace": "t1" },
        query: { page: "2" },
        variables: {
          title: { name: "title", value: "write tests", secret: false },
          done: { name: "done", value: false, secret: false },
        },
      }),
    );
    assert.equal(result.exitCode, 0);
    const seen = api.seen.at(-1)!;
    assert.equal(seen.method, "POST");
    assert.equal(seen.url, "/todos?page=2");
    assert.equal(seen.headers["x-trace"], "t1");
    assert.equal(seen.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(seen.body), { title: "write tests", done: false });
    assert.equal(result.context?.http_status, 201);
    assert.equal((result.context?.http_body as { id: number }).id, 101);
  });

  it("sends forms for the _FORM methods, and no body for GET", async () => {
    await executor.run(
      request(id(), "HTTP_PUT_FORM", {
        url: `${api.url}/form`,
        variables: { a: { name: "a", value: "x y", secret: false } },
      }),
    );
    const put = api.seen.at(-1)!;
    assert.equal(put.method, "PUT");
    assert.equal(put.headers["content-type"], "application/x-www-form-urlencoded");
    assert.equal(put.body, "a=x+y");
    await executor.run(request(id(), "HTTP_GET", { url: `${api.url}/get` }));
    assert.equal(api.seen.at(-1)!.body, "");
    await executor.run(request(id(), "HTTP_DELETE", { url: `${api.url}/del` }));
    assert.equal(api.seen.at(-1)!.method, "DELETE");
  });

  it("fails a non-2xx answer with the status as exit code, and an unreachable server without one", async () => {
    const failed = await executor.run(request(id(), "HTTP_GET", { url: `${api.url}/fail/404` }));
    assert.equal(failed.exitCode, 404);
    assert.equal(failed.errorCode, "COLONY_HTTP_STATUS");
    assert.equal(failed.context?.http_status, 404);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const down = await executor.run(
      request(id(), "HTTP_GET", { url: `http://127.0.0.1:${port}/x` }),
    );
    assert.equal(down.exitCode, null);
    assert.equal(down.errorCode, "COLONY_HTTP_UNREACHABLE");
    assert.match(down.error ?? "", /ECONNREFUSED/);
  });

  it("sends the task's headers as written, to any port, with no browser headers; follows redirects", async () => {
    // fetch would refuse these ports (browsers block them) and drop the Host header.
    const blocked = createServer((req, res) => res.end(JSON.stringify(req.headers)));
    let port: number | undefined;
    for (const candidate of [6000, 6665, 6666, 6667, 10080, 6697, 5060]) {
      const ok = await new Promise<boolean>((resolve) => {
        blocked.once("error", () => resolve(false));
        blocked.listen(candidate, "127.0.0.1", () => resolve(true));
      });
      if (ok) {
        port = candidate;
        break;
      }
    }
    assert.ok(port, "one of the ports fetch blocks is free on loopback");
    try {
      const result = await executor.run(
        request(id(), "HTTP_GET", {
          url: `http://127.0.0.1:${port}/`,
          headers: { Host: "api.internal.test", Connection: "close" },
        }),
      );
      assert.equal(result.exitCode, 0, result.error);
      const headers = JSON.parse(String(result.context?.http_body)) as Record<string, string>;
      assert.equal(headers.host, "api.internal.test");
      assert.equal(headers.connection, "close");
      assert.equal(headers["user-agent"], "colony");
      assert.equal(headers.accept, "*/*");
      assert.equal(headers["sec-fetch-mode"], undefined);
      assert.equal(headers["accept-language"], undefined);
    } finally {
      blocked.closeAllConnections();
      await new Promise((resolve) => blocked.close(resolve));
    }

    const moved = await executor.run(
      request(id(), "HTTP_POST_JSON", {
        url: `${api.url}/redirect/303/landed`,
        variables: { a: { name: "a", value: 1, secret: false } },
      }),
    );
    assert.equal(moved.exitCode, 0, moved.error);
    assert.equal(moved.context?.http_status, 201);
    const landed = api.seen.at(-1)!;
    assert.equal(landed.url, "/landed");
    assert.equal(landed.method, "GET", "a 303 is followed with a GET");
    const kept = await executor.run(
      request(id(), "HTTP_PUT_JSON", {
        url: `${api.url}/redirect/307/kept`,
        variables: { a: { name: "a", value: 2, secret: false } },
      }),
    );
    assert.equal(kept.exitCode, 0, kept.error);
    assert.equal(api.seen.at(-1)!.method, "PUT", "a 307 keeps the method");
    assert.deepEqual(JSON.parse(api.seen.at(-1)!.body), { a: 2 }, "and the body");
  });

  it("an https server it does not trust fails saying how to trust its CA, which works", async () => {
    const certs = makeTestCerts(await mkdtemp(join(tmpdir(), "colony-http-tls-")));
    const secure = createHttpsServer(
      { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) },
      (_req, res) => res.end("trusted\n"),
    );
    await new Promise<void>((resolve) => secure.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(secure.address() as AddressInfo).port}/`;
    try {
      const refused = await executor.run(request(id(), "HTTP_GET", { url }));
      assert.equal(refused.errorCode, "COLONY_HTTP_UNREACHABLE");
      assert.match(
        refused.error ?? "",
        /\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\); to trust the server's certificate, give colony its CA: NODE_EXTRA_CA_CERTS=/,
      );
      // As the message says: a process started with NODE_EXTRA_CA_CERTS trusts it.
      const script = `import { createHttpExecutor } from ${JSON.stringify(join(import.meta.dirname, "http-executor.ts"))};
import { taskDefinition } from ${JSON.stringify(join(import.meta.dirname, "../../ants/task-request.ts"))};
const e = createHttpExecutor();
const r = await e.run({ executionId: "t", method: "HTTP_GET", task: taskDefinition("t", { method: "HTTP_GET", url: ${JSON.stringify(url)} }), env: {}, variables: {}, unitDir: ${JSON.stringify(join(root, "units", "tls-trusted"))} });
await e.close();
process.stdout.write(String(r.exitCode) + " " + String(r.context?.http_body));`;
      const trusted = await new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          ["--input-type=module", "-e", script],
          { env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caCert } },
          (error, stdout) => (error ? reject(error) : resolve(stdout)),
        ),
      );
      assert.equal(trusted, "0 trusted\n");
    } finally {
      secure.closeAllConnections();
      await new Promise((resolve) => secure.close(resolve));
      await rm(certs.dir, { recursive: true, force: true });
    }
  });

  it("refuses a URL that is not http(s) at start", async () => {
    await assert.rejects(
      executor.start(request(id(), "HTTP_GET", { url: "file:///etc/passwd" })),
      /must start with http/,
    );
  });

  it("writes the body to the output as it arrives", async () => {
    const x = id();
    const result = await executor.run(request(x, "HTTP_GET", { url: `${api.url}/chatty/3` }));
    assert.equal(result.exitCode, 0);
    assert.equal(
      await readAll(await executor.logStream({ executionId: x })),
      "line 1\nline 2\nline 3\n",
    );
  });
});
