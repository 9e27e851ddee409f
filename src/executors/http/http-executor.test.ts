import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ExecutionRequest, Executor } from "../../core/executor.ts";
import type { Method, TaskDefinition } from "../../core/job-definition.ts";
import { taskDefinition } from "../../ants/task-request.ts";
import { executorConformance, quickLine, readAll } from "../executor-conformance.ts";
import { makeTestCerts } from "../../../test/support/tls-certs.ts";
import { createHttpExecutor, type HttpTls } from "./http-executor.ts";

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

/**
 * A GET of `url` by an HTTP executor in a child process started with
 * NODE_EXTRA_CA_CERTS=`extraCa` (and `tls.ca` read from `caFile`, if given): "exit-code
 * body", or "null error".
 */
function getInChild(url: string, extraCa: string, unitDir: string, caFile?: string) {
  const tls = caFile ? `{ tls: { ca: readFileSync(${JSON.stringify(caFile)}, "utf8") } }` : "";
  const script = `import { readFileSync } from "node:fs";
import { createHttpExecutor } from ${JSON.stringify(join(import.meta.dirname, "http-executor.ts"))};
import { taskDefinition } from ${JSON.stringify(join(import.meta.dirname, "../../ants/task-request.ts"))};
const e = createHttpExecutor(${tls});
const r = await e.run({ executionId: "t", method: "HTTP_GET", task: taskDefinition("t", { method: "HTTP_GET", url: ${JSON.stringify(url)} }), env: {}, variables: {}, unitDir: ${JSON.stringify(unitDir)} });
await e.close();
process.stdout.write(String(r.exitCode) + " " + String(r.context?.http_body ?? r.error));`;
  return new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ["--input-type=module", "-e", script],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: extraCa } },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    ),
  );
}

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

  it("an https server it does not trust fails saying how to trust its CA, which works; http.ca_file adds to Node's CAs", async () => {
    const certs = makeTestCerts(await mkdtemp(join(tmpdir(), "colony-http-tls-")));
    const secure = createHttpsServer(
      { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) },
      (_req, res) => res.end("trusted\n"),
    );
    await new Promise<void>((resolve) => secure.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(secure.address() as AddressInfo).port}/`;
    try {
      const refused = await executor.run(request(id(), "HTTP_GET", { url }));
      assert.equal(refused.errorCode, "COLONY_HTTP_TLS", refused.error);
      assert.match(
        refused.error ?? "",
        /\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\); to trust the server's certificate, give colony its CA: http\.ca_file in colony\.yaml, or NODE_EXTRA_CA_CERTS=\/path\/to\/ca\.pem/,
      );
      // As the message says: a process started with NODE_EXTRA_CA_CERTS trusts it.
      const trusted = await getInChild(url, certs.caCert, join(root, "units", "tls-trusted"));
      assert.equal(trusted, "0 trusted\n");
      // http.ca_file adds a CA to those Node trusts, not replaces them: with another CA
      // there, the server signed by the NODE_EXTRA_CA_CERTS one is still trusted.
      const both = await getInChild(
        url,
        certs.caCert,
        join(root, "units", "tls-both"),
        certs.otherCaCert,
      );
      assert.equal(both, "0 trusted\n");
    } finally {
      secure.closeAllConnections();
      await new Promise((resolve) => secure.close(resolve));
      await rm(certs.dir, { recursive: true, force: true });
    }
  });

  it("calls a server that wants client certificates (mTLS) with http.ca_file, cert_file and key_file; says what to set when one is missing or refused", async () => {
    const certs = makeTestCerts(await mkdtemp(join(tmpdir(), "colony-http-mtls-")));
    const pem = (path: string) => readFileSync(path, "utf8");
    // Servers on TLS 1.3 (Node's default) and on TLS 1.2: they refuse a client
    // certificate differently (an alert in the handshake; a closed connection after it).
    const servers = (["TLSv1.3", "TLSv1.2"] as const).map((maxVersion) =>
      createHttpsServer(
        {
          cert: readFileSync(certs.serverCert),
          key: readFileSync(certs.serverKey),
          ca: readFileSync(certs.caCert),
          requestCert: true,
          rejectUnauthorized: true,
          maxVersion,
        },
        (req, res) => {
          const peer = (req.socket as TLSSocket).getPeerCertificate();
          res.end(`hello ${peer.subject.CN}\n`);
        },
      ),
    );
    const ours = certs.client("colony-tasks");
    const foreign = certs.foreignClient("colony-tasks");
    try {
      const [v13, v12] = await Promise.all(
        servers.map(async (server) => {
          await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
          return `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
        }),
      );
      const call = async (url: string, tls: HttpTls) => {
        const e = createHttpExecutor({ tls });
        try {
          return await e.run(request(id(), "HTTP_GET", { url }));
        } finally {
          await e.close();
        }
      };
      const trusted = { ca: pem(certs.caCert) };
      const cert = { cert: pem(ours.cert), key: pem(ours.key) };
      const foreignCert = { cert: pem(foreign.cert), key: pem(foreign.key) };
      for (const url of [v13!, v12!]) {
        const ok = await call(url, { ...trusted, ...cert });
        assert.equal(ok.exitCode, 0, ok.error);
        assert.equal(ok.context?.http_body, "hello colony-tasks\n", "the server saw it");
      }
      // TLS 1.2: the server's alert says what is wrong.
      const noCert = await call(v12!, trusted);
      assert.equal(noCert.errorCode, "COLONY_HTTP_TLS", noCert.error);
      assert.match(
        noCert.error ?? "",
        /asks for a client certificate: set http\.cert_file and http\.key_file in colony\.yaml/,
      );
      // TLS 1.3: it closes the connection; the message says what that may mean.
      const noCert13 = await call(v13!, trusted);
      assert.equal(noCert13.errorCode, "COLONY_HTTP_UNREACHABLE", noCert13.error);
      assert.match(
        noCert13.error ?? "",
        /closed the connection before answering, as one that wants client certificates does when colony presents none \(set http\.cert_file and http\.key_file in colony\.yaml\)/,
      );
      for (const url of [v13!, v12!]) {
        const refused = await call(url, { ...trusted, ...foreignCert });
        assert.match(refused.errorCode ?? "", /^COLONY_HTTP_(TLS|UNREACHABLE)$/, refused.error);
        assert.match(
          refused.error ?? "",
          /(refused colony's client certificate \(http\.cert_file\)|when it refuses colony's \(http\.cert_file): it must be signed by a CA the server trusts/,
        );
      }
      const untrusted = await call(v13!, cert);
      assert.equal(untrusted.errorCode, "COLONY_HTTP_TLS");
      assert.match(untrusted.error ?? "", /give colony its CA: http\.ca_file in colony\.yaml/);
      const otherCa = await call(v13!, { ca: pem(certs.otherCaCert), ...cert });
      assert.equal(otherCa.errorCode, "COLONY_HTTP_TLS");
      assert.match(otherCa.error ?? "", /not signed by http\.ca_file nor by a CA Node trusts/);
    } finally {
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
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
