/**
 * HTTP tasks through a proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY). The proxy is a real
 * forward proxy on loopback (test/support/forward-proxy.ts): it forwards, tunnels, can
 * ask for credentials, and resolves `origin.test` to 127.0.0.1. The origins are Node's http and https servers (the https one
 * verifies client certificates), so TLS, the CA and the client certificate are seen to
 * end at the server, through the tunnel.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { taskDefinition } from "../src/ants/task-request.ts";
import type { ExecutionRequest, ExecutionResult } from "../src/core/executor.ts";
import { proxiesFromEnv, type Proxies } from "../src/core/proxies.ts";
import { createHttpExecutor, type HttpTls } from "../src/executors/http/http-executor.ts";
import { runCli, tempDir } from "./support/cli.ts";
import { ORIGIN, startProxy, stop, type Proxy } from "./support/forward-proxy.ts";
import { makeTestCerts, startClientCertServer, type TestCerts } from "./support/tls-certs.ts";

/** An origin answering what it saw: the Host header and the path. */
async function startOrigin(host: string): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ host: req.headers.host, path: req.url }));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { port: (server.address() as AddressInfo).port, server };
}

describe("HTTP tasks through a proxy (HTTP_PROXY, HTTPS_PROXY, NO_PROXY)", () => {
  const dir = tempDir("colony-http-proxy-");
  let certs: TestCerts;
  let plain: { port: number; server: Server };
  let secure: Server;
  let securePort: number;
  let proxy: Proxy;
  let guarded: Proxy;
  let n = 0;

  before(async () => {
    certs = makeTestCerts(dir.path);
    plain = await startOrigin("127.0.0.1");
    ({ server: secure, port: securePort } = await startClientCertServer(certs));
    proxy = await startProxy();
    guarded = await startProxy("colony:s3cret");
  });
  after(async () => {
    for (const s of [plain.server, secure]) await stop(s);
    await proxy.close();
    await guarded.close();
    dir.remove();
  });

  /** GET `url` with an HTTP executor using `proxies` (and `tls`). */
  async function get(url: string, proxies: Proxies, tls?: HttpTls): Promise<ExecutionResult> {
    const executor = createHttpExecutor({ proxies, ...(tls ? { tls } : {}) });
    const id = `proxy-${++n}`;
    const request: ExecutionRequest = {
      executionId: id,
      method: "HTTP_GET",
      task: taskDefinition("call", { method: "HTTP_GET", url }),
      env: {},
      variables: {},
      unitDir: join(dir.path, "units", id),
    };
    try {
      return await executor.run(request);
    } finally {
      await executor.close();
    }
  }
  const mtls = (): HttpTls => {
    const client = certs.client("through-the-tunnel");
    return {
      ca: readFileSync(certs.caCert, "utf8"),
      cert: readFileSync(client.cert, "utf8"),
      key: readFileSync(client.key, "utf8"),
    };
  };

  it("an http:// call is forwarded by HTTP_PROXY", async () => {
    const url = `http://${ORIGIN}:${plain.port}/forwarded?x=1`;
    const result = await get(url, { http: proxy.url });
    assert.equal(result.exitCode, 0, result.error);
    assert.deepEqual(result.context?.http_body, {
      host: `${ORIGIN}:${plain.port}`,
      path: "/forwarded?x=1",
    });
    assert.ok(proxy.log.includes(`GET ${url}`), proxy.log.join("\n"));
  });

  it("an https:// call is tunnelled by HTTPS_PROXY; TLS and the client certificate end at the server", async () => {
    const result = await get(
      `https://${ORIGIN}:${securePort}/whoami`,
      { https: proxy.url },
      mtls(),
    );
    assert.equal(result.exitCode, 0, result.error);
    assert.deepEqual(result.context?.http_body, {
      client: "through-the-tunnel",
      host: `${ORIGIN}:${securePort}`,
    });
    assert.ok(proxy.log.includes(`CONNECT ${ORIGIN}:${securePort}`), proxy.log.join("\n"));
    // Without HTTPS_PROXY, an https:// call uses HTTP_PROXY (as undici and Node do).
    const before = proxy.log.length;
    const viaHttp = await get(`https://${ORIGIN}:${securePort}/`, { http: proxy.url }, mtls());
    assert.equal(viaHttp.exitCode, 0, viaHttp.error);
    assert.equal(proxy.log[before], `CONNECT ${ORIGIN}:${securePort}`);
  });

  it("loopback is called directly, NO_PROXY's hosts too; others fail naming the proxy", async () => {
    const dead = "http://127.0.0.1:1";
    const direct = await get(`http://127.0.0.1:${plain.port}/`, { http: dead });
    assert.equal(direct.exitCode, 0, direct.error);
    const local = await get(`http://localhost:${plain.port}/`, { http: dead });
    assert.equal(local.exitCode, 0, local.error);
    // 127.0.0.2 is loopback too on Linux, but not a name colony bypasses by itself.
    const other = await startOrigin("127.0.0.2");
    try {
      const url = `http://127.0.0.2:${other.port}/`;
      const refused = await get(url, { http: dead });
      assert.equal(refused.exitCode, null);
      assert.equal(refused.errorCode, "COLONY_HTTP_UNREACHABLE");
      assert.match(
        refused.error ?? "",
        /^http:\/\/127\.0\.0\.2:\d+ through the proxy http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED.*; check that the proxy is up, or list the host in NO_PROXY/,
      );
      const listed = await get(url, { http: dead, noProxy: "example.com, 127.0.0.2" });
      assert.equal(listed.exitCode, 0, listed.error);
    } finally {
      await stop(other.server);
    }
  });

  it("a proxy that wants credentials: a 407 says so without showing the password; the URL's pass", async () => {
    const url = `https://${ORIGIN}:${securePort}/`;
    const wrong = guarded.url.replace("s3cret", "wrong");
    const refused = await get(url, { https: wrong }, mtls());
    assert.equal(refused.errorCode, "COLONY_HTTP_UNREACHABLE");
    assert.match(
      refused.error ?? "",
      /through the proxy http:\/\/colony:\*\*\*@127\.0\.0\.1:\d+: the proxy answered 407 Proxy Authentication Required; it wants credentials/,
    );
    assert.doesNotMatch(refused.error ?? "", /wrong|s3cret/);
    const none = await get(url, { https: guarded.url.replace("colony:s3cret@", "") }, mtls());
    assert.match(none.error ?? "", /answered 407/);
    const ok = await get(url, { https: guarded.url }, mtls());
    assert.equal(ok.exitCode, 0, ok.error);
    assert.ok(guarded.log.includes(`CONNECT ${ORIGIN}:${securePort}`));
  });

  it("the variables: lowercase first, empty counts as unset", () => {
    assert.deepEqual(
      proxiesFromEnv({
        HTTP_PROXY: "http://upper:1",
        http_proxy: "http://lower:2",
        HTTPS_PROXY: "http://secure:3",
        https_proxy: "",
        NO_PROXY: "a.example,b.example",
      }),
      { http: "http://lower:2", https: "http://secure:3", noProxy: "a.example,b.example" },
    );
    assert.deepEqual(proxiesFromEnv({ HTTP_PROXY: "", no_proxy: "" }), {});
  });

  it("colony run's HTTP tasks use the proxy of its environment", async () => {
    const before = proxy.log.length;
    const job = join(dir.path, "proxied.yaml");
    writeFileSync(
      job,
      [
        "job_type: proxied",
        "tasks:",
        "- task_type: call",
        "  method: HTTP_GET",
        `  url: http://${ORIGIN}:${plain.port}/from-run`,
      ].join("\n"),
    );
    const { code, stdout, stderr } = await runCli(
      ["run", job, "--json", "--quiet", "--data-dir", join(dir.path, "run")],
      { env: { HTTP_PROXY: proxy.url, http_proxy: "", NO_PROXY: "" } },
    );
    assert.equal(code, 0, stderr);
    const done = JSON.parse(stdout) as { tasks: Array<{ context: { http_body: unknown } }> };
    assert.deepEqual(done.tasks[0]!.context.http_body, {
      host: `${ORIGIN}:${plain.port}`,
      path: "/from-run",
    });
    assert.deepEqual(proxy.log.slice(before), [`GET http://${ORIGIN}:${plain.port}/from-run`]);
  });
});
