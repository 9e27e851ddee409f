/**
 * An ant on another machine reaches a TLS server (a private CA given with --ca) for all
 * it does: its WebSocket, and the artifact transfers it makes itself. Then the same
 * through a forward proxy (HTTPS_PROXY, test/support/forward-proxy.ts): the WebSocket and
 * the transfers are tunnelled with CONNECT (a worker of the SDK's too), and a proxy that
 * wants credentials is named in the agent's log. The server's own URL there is `https://origin.test:PORT`, a name only
 * the proxy resolves, so whatever reaches the server went through the proxy.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { AntAgent } from "../src/ants/ant-agent.ts";
import { startWebSocketWorker } from "../src/worker/index.ts";
import {
  startAntServer,
  untilAntConnected,
  waitForAnt,
  type AntTestServer,
} from "./support/ants.ts";
import { runCli, startCli, tempDir } from "./support/cli.ts";
import { freePort } from "./support/nodes.ts";
import { ORIGIN, startProxy, type Proxy } from "./support/forward-proxy.ts";
import { waitUntil } from "./support/server-harness.ts";

const ANT_YAML = "ant:\n  ping_interval: 500ms\n  reconnect_grace: 1s\n  poll_delay: 100ms\n";

/** A job of two tasks on ants tagged `tag`: one stores an artifact, the next fetches it. */
function artifactJob(tag: string): string {
  return [
    `job_type: art-${tag}`,
    "tasks:",
    "- task_type: build",
    `  tags: [${tag}]`,
    "  script: ['echo made here > a.txt']",
    "  artifacts:",
    "    paths: [a.txt]",
    "  on_completed: use",
    "- task_type: use",
    `  tags: [${tag}]`,
    "  dependencies: [build]",
    "  script: ['cat a.txt']",
  ].join("\n");
}

describe("an ant on a TLS server with a private CA (--ca)", () => {
  const dir = tempDir("colony-ant-ca-");
  let s: AntTestServer;
  let agent: AntAgent | undefined;
  before(async () => {
    s = await startAntServer({ tls: true });
  });
  after(async () => {
    await agent?.close();
    await s.close();
    dir.remove();
  });

  it("moves its artifacts over https, trusting the CA its WebSocket trusts", async () => {
    agent = new AntAgent({
      server: s.url,
      token: s.antToken,
      antId: "ca-ant",
      tags: ["ca"],
      dataDir: dir.path,
      ca: s.ca!,
      proxies: {},
    });
    await agent.start();
    await waitForAnt(s, "ca-ant");
    const { id } = await s.submit(artifactJob("ca"));
    const { job, tasks } = await s.finished(id);
    assert.equal(job.state, "COMPLETED", JSON.stringify(tasks.map((t) => t.errorMessage)));
    assert.deepEqual(
      tasks.map((t) => [t.taskType, t.handle?.ant_id]),
      [
        ["build", "ca-ant"],
        ["use", "ca-ant"],
      ],
    );
  });
});

describe("an ant behind a proxy (HTTPS_PROXY)", () => {
  const dir = tempDir("colony-ant-proxy-");
  let s: AntTestServer;
  let proxy: Proxy;
  let guarded: Proxy;
  let port: number;
  const children: ChildProcess[] = [];
  before(async () => {
    port = await freePort();
    s = await startAntServer({
      tls: true,
      port,
      yaml: `${ANT_YAML}base_url: https://${ORIGIN}:${port}\n`,
    });
    proxy = await startProxy();
    guarded = await startProxy("colony:s3cret");
  });
  after(async () => {
    for (const c of children) c.kill("SIGKILL");
    await proxy.close();
    await guarded.close();
    await s.close();
    dir.remove();
  });

  /** `colony ant` to wss://origin.test with HTTPS_PROXY=`through`. */
  const antThrough = (through: string, antId: string, tag: string) => {
    const run = startCli(
      [
        "ant",
        "--server",
        `wss://${ORIGIN}:${port}`,
        "--token",
        s.antToken,
        "--ant-id",
        antId,
        "--tags",
        tag,
        "--ca",
        s.certs!.caCert,
        "--data-dir",
        `${dir.path}/${antId}`,
      ],
      { env: { HTTPS_PROXY: through, https_proxy: "", NO_PROXY: "", no_proxy: "" } },
    );
    children.push(run.child);
    return run;
  };

  it("connects and moves its artifacts through the proxy", async () => {
    const run = antThrough(proxy.url, "proxied-ant", "proxied");
    await untilAntConnected(s, run, "proxied-ant");
    const { id } = await s.submit(artifactJob("proxied"));
    const { job, tasks } = await s.finished(id);
    assert.equal(job.state, "COMPLETED", JSON.stringify(tasks.map((t) => t.errorMessage)));
    // The WebSocket, then the upload and the download (each its own tunnel or one kept).
    const tunnels = proxy.log.filter((line) => line === `CONNECT ${ORIGIN}:${port}`);
    assert.ok(tunnels.length >= 2, proxy.log.join("\n"));
    assert.deepEqual(
      proxy.log.filter((line) => !line.startsWith("CONNECT ")),
      [],
      "nothing was sent to the proxy in the clear",
    );
  });

  it("a worker of the SDK connects through the proxy too", async () => {
    const before = proxy.log.length;
    const worker = startWebSocketWorker({
      server: `wss://${ORIGIN}:${port}`,
      token: s.antToken,
      antId: "proxied-worker",
      tags: ["sdk"],
      ca: s.ca!,
      proxies: { https: proxy.url },
      handle: () => ({ task_context: { via: "proxy" } }),
    });
    try {
      await worker.ready;
      const { id } = await s.submit(
        "job_type: sdk-proxied\ntasks:\n- task_type: t\n  method: WEBSOCKET\n  tags: [sdk]\n",
      );
      const { job, tasks } = await s.finished(id);
      assert.equal(job.state, "COMPLETED", JSON.stringify(tasks.map((t) => t.errorMessage)));
      assert.equal(tasks[0]!.context.via, "proxy");
      assert.deepEqual(proxy.log.slice(before), [`CONNECT ${ORIGIN}:${port}`]);
    } finally {
      await worker.close();
    }
  });

  it("the CLI's client commands reach the server through the proxy, and name one that refuses", async () => {
    const before = proxy.log.length;
    const server = `https://${ORIGIN}:${port}`;
    const list = (through: string) =>
      runCli(
        [
          "jobs",
          "list",
          "--json",
          "--server",
          server,
          "--token",
          s.adminToken,
          "--ca",
          s.certs!.caCert,
        ],
        { env: { HTTPS_PROXY: through, https_proxy: "", NO_PROXY: "", no_proxy: "" } },
      );
    const listed = await list(proxy.url);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(Array.isArray((JSON.parse(listed.stdout) as { items: unknown[] }).items));
    assert.deepEqual(proxy.log.slice(before), [`CONNECT ${ORIGIN}:${port}`]);
    const refused = await list(guarded.url.replace("s3cret", "wrong"));
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /cannot reach https:\/\/origin\.test:\d+ \(from --server\) through the proxy http:\/\/colony:\*\*\*@127\.0\.0\.1:\d+: .*407.*; it wants credentials/,
    );
    assert.doesNotMatch(refused.stderr, /wrong|s3cret/);
  });

  it("a proxy that wants credentials: the agent says so, password hidden, and keeps trying", async () => {
    const run = antThrough(guarded.url.replace("s3cret", "wrong"), "refused-ant", "refused");
    await waitUntil(
      "the agent logged the refusal",
      () => /answered 407/.test(run.stderr()),
      20_000,
    );
    assert.match(
      run.stderr(),
      /through the proxy http:\/\/colony:\*\*\*@127\.0\.0\.1:\d+: the proxy answered 407 Proxy Authentication Required to CONNECT origin\.test:\d+; it wants credentials/,
    );
    assert.doesNotMatch(run.stderr(), /wrong|s3cret/);
    assert.equal(run.child.exitCode, null, "it keeps reconnecting");
  });
});
