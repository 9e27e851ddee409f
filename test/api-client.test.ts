/**
 * The typed client's transport against real sockets: https with a private CA (and the
 * message without it), keep-alive, answers that are not colony's, and a server that is
 * not there. (What it says to colony's own routes is tested by the other api-* tests.)
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { ColonyClientError, createClient } from "../src/client/client.ts";
import { tempDir } from "./support/cli.ts";
import { makeTestCerts } from "./support/tls-certs.ts";

describe("colony client transport", () => {
  const dir = tempDir("colony-client-");
  let server: https.Server;
  let url: string;
  let ca: string;
  const sockets = new Set<unknown>();

  before(async () => {
    const certs = makeTestCerts(dir.path);
    ca = readFileSync(certs.caCert, "utf8");
    server = https.createServer(
      { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) },
      (req, res) => {
        if (req.url === "/api/health") {
          res.setHeader("content-type", "application/json");
          res.end(
            JSON.stringify({
              status: "ok",
              node_id: "x",
              store: "sqlite",
              version: "0",
              uptime_seconds: 1,
            }),
          );
        } else if (req.url === "/api/units") {
          res.end("<html>not json</html>");
        } else {
          res.statusCode = 502;
          res.end("Bad Gateway");
        }
      },
    );
    server.on("connection", (s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    dir.remove();
  });

  it("talks https to a server whose certificate a private CA signed, over one kept-alive connection", async () => {
    const client = createClient({ server: url, ca });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await client.health()).status, "ok");
      assert.equal(sockets.size, 1, "keep-alive reused the connection");
    } finally {
      client.close();
    }
  });

  it("without the CA, says the certificate is not trusted and what to pass", async () => {
    const client = createClient({ server: url, sources: { server: "$COLONY_SERVER" } });
    try {
      await assert.rejects(client.health(), (e: ColonyClientError) => {
        assert.ok(e instanceof ColonyClientError);
        assert.equal(e.code, "COLONY_TLS");
        assert.match(e.message, /\(from \$COLONY_SERVER\): its certificate is not trusted/);
        assert.match(e.message, /--ca FILE or set COLONY_CA/);
        return true;
      });
    } finally {
      client.close();
    }
  });

  it("reports answers that are not colony's plainly", async () => {
    const client = createClient({ server: url, ca });
    try {
      await assert.rejects(client.listUnits(), { code: "COLONY_BAD_ANSWER", status: 200 });
      await assert.rejects(client.getJobRequest(1), (e: ColonyClientError) => {
        assert.equal(e.status, 502);
        assert.equal(e.code, "COLONY_HTTP_502");
        assert.match(e.message, /answered 502: Bad Gateway/);
        return true;
      });
    } finally {
      client.close();
    }
  });

  it("names the address it tried and where it came from when nothing answers", async () => {
    const client = createClient({ server: "http://127.0.0.1:1/", sources: { server: "default" } });
    try {
      await assert.rejects(client.listJobRequests(), (e: ColonyClientError) => {
        assert.equal(e.code, "COLONY_UNREACHABLE");
        assert.equal(e.status, 0);
        assert.equal(
          e.message,
          "cannot reach http://127.0.0.1:1 (from default); is 'colony server' running? Set --server or COLONY_SERVER",
        );
        return true;
      });
    } finally {
      client.close();
    }
    assert.throws(() => createClient({ server: "ftp://x" }), { code: "COLONY_BAD_SERVER_URL" });
    assert.throws(() => createClient({ server: "not a url" }), { code: "COLONY_BAD_SERVER_URL" });
  });
});
