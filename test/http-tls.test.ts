/**
 * HTTP tasks calling an https server that wants client certificates (mutual TLS), with
 * the `http:` keys of colony.yaml: on the server's built-in ant, and on a `colony ant`
 * (a second process, the real CLI) given the file with --config. The server is Node's
 * https with `requestCert` and `rejectUnauthorized`, certificates made by openssl; it
 * answers with the name in the client certificate it verified, so each test sees which
 * certificate was presented. Each side's failures (no certificate, one refused, a CA not
 * trusted) are tested on the executor (src/executors/http/http-executor.test.ts); the
 * config's checks in test/config-file.test.ts.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import type { Server } from "node:https";
import { after, before, describe, it } from "node:test";
import { startServer } from "../src/server/server.ts";
import { startAntServer, untilAntConnected, type AntTestServer } from "./support/ants.ts";
import { runCli, startCli, tempDir } from "./support/cli.ts";
import { testConfig } from "./support/server-harness.ts";
import { makeTestCerts, startClientCertServer, type TestCerts } from "./support/tls-certs.ts";

describe("HTTP tasks with client certificates (http: in colony.yaml)", () => {
  const dir = tempDir("colony-http-tls-");
  let certs: TestCerts;
  let api: Server;
  let url: string;
  let s: AntTestServer;
  let ant: ChildProcess | undefined;

  /** The `http:` keys for a client certificate with CN `cn`. */
  const httpKeys = (cn: string) => {
    const client = certs.client(cn);
    return `http:\n  ca_file: ${certs.caCert}\n  cert_file: ${client.cert}\n  key_file: ${client.key}\n`;
  };

  before(async () => {
    certs = makeTestCerts(dir.path);
    const started = await startClientCertServer(certs);
    api = started.server;
    url = `https://127.0.0.1:${started.port}/whoami`;
    s = await startAntServer({
      yaml: `${httpKeys("colony-server")}ant:\n  ping_interval: 500ms\n  reconnect_grace: 1s\n`,
    });
  });
  after(async () => {
    ant?.kill("SIGKILL");
    await s.close();
    api.closeAllConnections();
    await new Promise((resolve) => api.close(resolve));
    dir.remove();
  });

  const job = (tags: string[]) =>
    [
      "job_type: mtls-call",
      "tasks:",
      "- task_type: whoami",
      "  method: HTTP_GET",
      `  url: ${url}`,
      ...(tags.length ? [`  tags: [${tags.join(", ")}]`] : []),
    ].join("\n");

  /** Runs the call on the server (on an ant with `tags`): the client certificate's CN the API saw. */
  const presented = async (tags: string[]) => {
    const { id } = await s.submit(job(tags));
    const { job: done, tasks } = await s.finished(id);
    assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
    return (tasks[0]!.context.http_body as { client: string }).client;
  };

  it("the server's built-in ant presents http.cert_file", async () => {
    assert.equal(await presented([]), "colony-server");
  });

  it("colony ant --config presents the certificate of its own http: keys", async () => {
    const config = `${dir.path}/ant.yaml`;
    writeFileSync(config, httpKeys("colony-ant"));
    const run = startCli([
      "ant",
      "--server",
      s.wsUrl.replace(/\/ws\/ants$/, ""),
      "--token",
      s.antToken,
      "--ant-id",
      "mtls-ant",
      "--tags",
      "mtls",
      "--methods",
      "HTTP_GET",
      "--data-dir",
      `${dir.path}/ant`,
      "--config",
      config,
    ]);
    ant = run.child;
    await untilAntConnected(s, run, "mtls-ant");
    assert.equal(await presented(["mtls"]), "colony-ant");
  });

  it("colony run --config (or $COLONY_CONFIG) presents the certificate of its http: keys", async () => {
    const config = `${dir.path}/run.yaml`;
    writeFileSync(config, httpKeys("colony-run"));
    const jobFile = `${dir.path}/mtls-job.yaml`;
    writeFileSync(jobFile, job([]));
    for (const [i, how] of [
      ["--config", config],
      [], // from the environment below
    ].entries()) {
      const { code, stdout, stderr } = await runCli(
        ["run", jobFile, "--json", "--quiet", "--data-dir", `${dir.path}/run-${i}`, ...how],
        how.length ? {} : { env: { COLONY_CONFIG: config } },
      );
      assert.equal(code, 0, stderr);
      const done = JSON.parse(stdout) as { state: string; tasks: Array<{ context: unknown }> };
      assert.equal(done.state, "COMPLETED");
      const body = (done.tasks[0]!.context as { http_body: { client: string } }).http_body;
      assert.equal(body.client, "colony-run");
    }
    // Without the keys, the server refuses the call: the job fails.
    const bare = await runCli(["run", jobFile, "--quiet", "--data-dir", `${dir.path}/run-bare`]);
    assert.equal(bare.code, 1, bare.stderr);
  });

  it("a server, an ant or a run with an unreadable http: file does not start, and says which", async () => {
    const missing = `${dir.path}/missing-key.pem`;
    const client = certs.client("nobody");
    const yaml = `http:\n  cert_file: ${client.cert}\n  key_file: ${missing}\n`;
    mkdirSync(`${dir.path}/refused`);
    await assert.rejects(
      startServer(testConfig(`${dir.path}/refused`, { yaml })),
      new RegExp(`^ConfigError: http\\.key_file: cannot read ${missing}: ENOENT`),
    );
    const config = `${dir.path}/bad-ant.yaml`;
    writeFileSync(config, yaml);
    const run = startCli([
      "ant",
      "--server",
      "ws://127.0.0.1:1",
      "--token",
      "t",
      "--data-dir",
      `${dir.path}/bad-ant`,
      "--config",
      config,
    ]);
    const { code, stderr } = await run.result;
    assert.equal(code, 2, stderr);
    assert.match(stderr, new RegExp(`http\\.key_file: cannot read ${missing}: ENOENT`));
    // colony run: exit 2 before the job is recorded.
    const jobFile = `${dir.path}/never-run.yaml`;
    writeFileSync(jobFile, job([]));
    const runData = `${dir.path}/bad-run`;
    const refused = await runCli(["run", jobFile, "--data-dir", runData, "--config", config]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`http\\.key_file: cannot read ${missing}: ENOENT`));
    assert.equal(existsSync(runData), false, "no data dir was made for a run that never started");
  });
});
