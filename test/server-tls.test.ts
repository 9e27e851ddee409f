/**
 * TLS and mutual TLS on the real server, with certificates the test makes with openssl:
 * https with the test CA; with a client CA, requests without a certificate or with one
 * from another CA are refused (401 naming the reason), and a verified certificate whose
 * CN is mapped in tls.client_cn_roles carries that role.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { http, roleTestRoutes, testConfig } from "./support/server-harness.ts";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.ts";

const quiet = { log: () => undefined };
const routes = [...ALL_ROUTES, roleTestRoutes];

describe("server over TLS", () => {
  const dir = tempDir("colony-tls-");
  let certs: TestCerts;
  let server: RunningServer;
  before(async () => {
    certs = makeTestCerts(dir.path);
    server = await startServer(
      testConfig(dir.path, {
        overrides: { tlsCert: certs.serverCert, tlsKey: certs.serverKey },
      }),
      { ...quiet, routes },
    );
  });
  after(async () => {
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  it("serves https that clients trusting the test CA accept", async () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await http(`${server.url}/api/health`, { ca: certs.caCert });
    assert.equal(res.status, 200);
    const admin = readFileSync(server.adminTokenFile!, "utf8").trim();
    const tokens = await http(`${server.url}/api/tokens`, {
      ca: certs.caCert,
      headers: { authorization: admin },
    });
    assert.equal(tokens.status, 200);
  });

  it("is refused by clients that do not trust its CA", async () => {
    await assert.rejects(http(`${server.url}/api/health`), /self-signed|unable to (get|verify)/i);
  });

  it("does not speak plain http on the https port", async () => {
    const res = await http(server.url.replace("https:", "http:") + "/api/health").catch(
      (e: Error) => e,
    );
    assert.ok(res instanceof Error || res.status === 400, "no plain-http answer");
  });
});

describe("server with mutual TLS", () => {
  const dir = tempDir("colony-mtls-");
  let certs: TestCerts;
  let server: RunningServer;
  let admin: string;
  before(async () => {
    certs = makeTestCerts(dir.path);
    server = await startServer(
      testConfig(dir.path, {
        yaml: [
          "tls:",
          `  cert: ${certs.serverCert}`,
          `  key: ${certs.serverKey}`,
          `  client_ca: ${certs.caCert}`,
          "  client_cn_roles:",
          "    deploy-bot: writer",
          "    auditor: reader",
          "",
        ].join("\n"),
      }),
      { ...quiet, routes },
    );
    admin = readFileSync(server.adminTokenFile!, "utf8").trim();
  });
  after(async () => {
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  const call = (path: string, options: Parameters<typeof http>[1] = {}) =>
    http(`${server.url}${path}`, { ca: certs.caCert, ...options });

  it("refuses a request without a client certificate, even with a valid token", async () => {
    for (const path of ["/api/health", "/api/tokens", "/nowhere"]) {
      const res = await call(path, { headers: { authorization: admin } });
      assert.equal(res.status, 401, path);
      const body = res.json<{ error: { code: string; message: string } }>();
      assert.equal(body.error.code, "COLONY_CLIENT_CERTIFICATE_REQUIRED");
      assert.match(body.error.message, /requires a client certificate/);
    }
  });

  it("refuses a client certificate signed by another CA", async () => {
    const foreign = certs.foreignClient("deploy-bot");
    const res = await call("/test/reader", { ...foreign, headers: { authorization: admin } });
    assert.equal(res.status, 401);
    const body = res.json<{ error: { code: string; message: string } }>();
    assert.equal(body.error.code, "COLONY_CLIENT_CERTIFICATE_REQUIRED");
    assert.match(body.error.message, /not accepted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
  });

  it("gives a verified certificate the role its CN maps to", async () => {
    const bot = certs.client("deploy-bot");
    const write = await call("/test/writer", { ...bot, method: "POST" });
    assert.equal(write.status, 200, write.text);
    assert.deepEqual(write.json(), {
      principal: { name: "deploy-bot", role: "writer", via: "certificate" },
    });
    const adminOnly = await call("/api/tokens", bot);
    assert.equal(adminOnly.status, 403, "writer is not admin");

    const auditor = certs.client("auditor");
    assert.equal((await call("/test/reader", auditor)).status, 200);
    assert.equal((await call("/test/writer", { ...auditor, method: "POST" })).status, 403);
  });

  it("needs a token for a verified certificate whose CN maps to no role", async () => {
    const stranger = certs.client("stranger");
    const res = await call("/test/reader", stranger);
    assert.equal(res.status, 401);
    assert.match(res.text, /'stranger' maps to no role/);
    assert.equal((await call("/api/health", stranger)).status, 200);
    // A token decides when one is sent (here: more than the certificate alone gives).
    const withToken = await call("/api/tokens", { ...stranger, headers: { authorization: admin } });
    assert.equal(withToken.status, 200);
    // And an unknown token is refused even with a mapped certificate.
    const wrong = await call("/test/reader", {
      ...certs.client("deploy-bot"),
      headers: { authorization: "colony_wrong" },
    });
    assert.equal(wrong.status, 401);
  });
});

describe("the openssl commands in docs/security.md", () => {
  it("make certificates a mutual-TLS server accepts, with the CN mapped to its role", async () => {
    const doc = readFileSync(new URL("../docs/security.md", import.meta.url), "utf8");
    const block = /<!-- tested: test\/server-tls\.test\.ts -->\n```sh\n([\s\S]*?)```/.exec(doc);
    assert.ok(block, "docs/security.md has the tested openssl block");
    const dir = tempDir("colony-tls-doc-");
    let server: RunningServer | undefined;
    try {
      execFileSync("bash", ["-euo", "pipefail", "-c", block[1]!], {
        cwd: dir.path,
        stdio: ["ignore", "ignore", "pipe"],
      });
      const file = (name: string) => join(dir.path, name);
      server = await startServer(
        testConfig(dir.path, {
          yaml: [
            "tls:",
            "  cert: server.pem",
            "  key: server.key",
            "  client_ca: ca.pem",
            "  client_cn_roles: {deploy-bot: writer}",
            "",
          ].join("\n"),
        }),
        { ...quiet, routes },
      );
      const url = server.url.replace("127.0.0.1", "localhost");
      const res = await http(`${url}/test/writer`, {
        method: "POST",
        ca: file("ca.pem"),
        cert: file("client.pem"),
        key: file("client.key"),
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json(), {
        principal: { name: "deploy-bot", role: "writer", via: "certificate" },
      });
    } finally {
      await server?.close({ graceMs: 0 });
      dir.remove();
    }
  });
});
