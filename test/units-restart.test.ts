/**
 * Units survive restarts, and remote work survives a peer that goes away: two real
 * `colony server` processes on fixed loopback ports, killed with SIGKILL and started
 * again on the same data dirs while units run.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startCli, tempDir } from "./support/cli.ts";
import { freePort, Node, waitForUnit } from "./support/nodes.ts";
import { receptorctl } from "./support/receptorctl.ts";

const dir = tempDir("colony-units-restart-");
let foo: Node;
let bar: Node;

const ctl = (args: string[]) => receptorctl(["--socket", foo.socket, ...args]);

async function submit(args: string[], expect = "Job Started"): Promise<string> {
  const r = await ctl(["work", "submit", ...args, "--no-payload"]);
  assert.equal(r.code, 0, r.stderr);
  const m = new RegExp(`^Result: ${expect}\\nUnit ID: ([A-Za-z0-9]{8})\\n$`).exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1]!;
}

function status(
  node: Node,
  id: string,
): { State: number; Detail: string; ExtraData: Record<string, unknown> } {
  return JSON.parse(readFileSync(join(node.dataDir, "units", id, "status"), "utf8")) as {
    State: number;
    Detail: string;
    ExtraData: Record<string, unknown>;
  };
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // gone already
  }
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

const TICKS = Array.from({ length: 12 }, (_, i) => `${i + 1}\n`).join("");

before(async () => {
  const [fooPort, barPort] = await Promise.all([freePort(), freePort()]);
  bar = new Node(dir.path, "bar", barPort);
  bar.configure(`work_types:
  - work_type: ticker
    command: bash
    params: "-c \\"for i in {1..12}; do echo $i; sleep 0.2; done\\""
  - work_type: sleepy
    command: sleep
    params: "60"
`);
  await bar.start();
  const token = await bar.token("writer", "foo");
  foo = new Node(dir.path, "foo", fooPort);
  foo.configure(`work_types:
  - work_type: ticker
    command: bash
    params: "-c \\"for i in {1..12}; do echo $i; sleep 0.2; done\\""
  - work_type: sleepy
    command: sleep
    params: "60"
peers:
  - node_id: bar
    url: ${bar.url}
    token: ${token}
units:
  remote_poll: 200ms
  remote_retry_max: 500ms
`);
  await foo.start();
});

after(async () => {
  // Nothing a test started may outlive it: cancel what still runs, then stop.
  for (const node of [foo, bar]) {
    if (!node?.child) continue;
    const list = await node.api("/api/units?kind=work&limit=500");
    for (const u of list.json<{ items: { id: string; state: string }[] }>().items) {
      if (u.state === "Running" || u.state === "Pending") {
        await node.api(`/api/units/${u.id}/release?force=true`, { method: "POST" });
      }
    }
  }
  await Promise.all([foo?.stop(), bar?.stop()]);
  dir.remove();
});

describe("units across restarts", () => {
  it("kill -9 of the server while units run: the next start re-attaches, local and remote, nothing lost or doubled", async () => {
    const local = await submit(["ticker"]);
    const remote = await submit(["ticker", "--node", "bar"]);
    await waitForUnit(foo, remote, (u) => u.stdout_size >= 4, "to have output");
    await foo.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 600)); // output goes on meanwhile
    await foo.start();
    for (const id of [local, remote]) {
      const r = await ctl(["work", "results", id]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, TICKS, `unit ${id}`);
      assert.equal(status(foo, id).State, 2);
    }
  });

  it("a peer killed mid-stream and started again: the remote unit resumes from its own size", async () => {
    const remote = await submit(["ticker", "--node", "bar"]);
    await waitForUnit(foo, remote, (u) => u.stdout_size >= 4, "to have output");
    await bar.stop("SIGKILL");
    await new Promise((r) => setTimeout(r, 800));
    await bar.start();
    const r = await ctl(["work", "results", remote]);
    assert.equal(r.stdout, TICKS);
  });

  it("a unit whose process died while the server was down becomes Failed with the reason", async () => {
    const unrecorded = await submit(["sleepy"]);
    const recorded = await submit(["sleepy"]);
    const pid1 = Number(status(foo, unrecorded).ExtraData.Pid);
    const pid2 = Number(status(foo, recorded).ExtraData.Pid);
    assert.ok(pid1 > 0 && pid2 > 0);
    const spawner = parentOf(pid1);
    assert.equal(parentOf(pid2), spawner, "one spawner runs both");
    await foo.stop("SIGKILL");
    // The second dies while the spawner (orphaned, alive) still records how...
    killGroup(pid2);
    const exitFile = join(foo.dataDir, "units", recorded, "exit");
    while (!existsSync(exitFile)) await new Promise((r) => setTimeout(r, 20));
    // ...the first dies with its spawner: no exit status is recorded anywhere.
    process.kill(spawner, "SIGKILL");
    killGroup(pid1);
    await new Promise((r) => setTimeout(r, 200));
    await foo.start();
    const a = await waitForUnit(foo, unrecorded, (u) => u.state === "Failed", "to fail");
    assert.match(a.detail, /ended while colony was (down|not watching).*not recorded/);
    const b = await waitForUnit(foo, recorded, (u) => u.state === "Failed", "to fail");
    assert.match(b.detail, /signal: killed|exit status/);
  });

  it("a unit whose payload was still arriving when the server died fails: Pending at restart", async () => {
    const socket = net.connect(foo.socket);
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => (text += c));
    socket.on("error", () => undefined);
    await new Promise((r) => socket.once("connect", r));
    socket.write(
      '{"command":"work","subcommand":"submit","node":"localhost","worktype":"ticker"}\n',
    );
    socket.write("half a payl");
    while (!/created with ID (\w+)/.test(text)) await new Promise((r) => setTimeout(r, 20));
    const id = /created with ID (\w+)/.exec(text)![1]!;
    await foo.stop("SIGKILL");
    socket.destroy();
    await foo.start();
    const u = await waitForUnit(foo, id, (x) => x.state === "Failed", "to fail");
    assert.equal(u.detail, "Pending at restart: the payload was not completely received");
  });
});

describe("remote work while the peer is down", () => {
  it("submit while bar is down answers Job Submitted and runs once bar is up", async () => {
    await bar.stop();
    const id = await submit(["ticker", "--node", "bar"], "Job Submitted");
    const waiting = await waitForUnit(
      foo,
      id,
      (u) => /waiting to submit/.test(u.detail),
      "to wait",
    );
    assert.equal(waiting.state, "Pending");
    await bar.start();
    const r = await ctl(["work", "results", id]);
    assert.equal(r.stdout, TICKS);
  });

  it("cancel with bar down is pending, and reaches bar once it is back", async () => {
    const id = await submit(["sleepy", "--node", "bar"]);
    const running = await waitForUnit(foo, id, (u) => u.state === "Running", "to run");
    const remoteId = (running.extra_data as { RemoteUnitID: string }).RemoteUnitID;
    await bar.stop("SIGKILL"); // its sleep keeps running under bar's spawner
    const r = await ctl(["work", "cancel", id]);
    assert.equal(r.stdout, `Cancelled:\n(${id}, cancel pending)\n`);
    assert.equal(status(foo, id).ExtraData.LocalCancelled, true);
    await bar.start();
    await waitForUnit(bar, remoteId, (u) => u.state === "Canceled", "canceled on bar");
    await waitForUnit(foo, id, (u) => u.state === "Canceled", "canceled on foo");
  });

  it("release with bar down is pending (files stay) until bar is back; force-release deletes here at once", async () => {
    const pending = await submit(["sleepy", "--node", "bar"]);
    const forced = await submit(["sleepy", "--node", "bar"]);
    const p = await waitForUnit(foo, pending, (u) => u.state === "Running", "to run");
    const f = await waitForUnit(foo, forced, (u) => u.state === "Running", "to run");
    const pendingRemote = (p.extra_data as { RemoteUnitID: string }).RemoteUnitID;
    const forcedRemote = (f.extra_data as { RemoteUnitID: string }).RemoteUnitID;
    await bar.stop("SIGKILL");
    const r = await ctl(["work", "release", pending]);
    assert.equal(r.stdout, `Released:\n(${pending}, release pending)\n`);
    assert.ok(existsSync(join(foo.dataDir, "units", pending)), "the files stay while bar is down");
    assert.equal(status(foo, pending).ExtraData.LocalReleased, true);
    const force = await ctl(["work", "release", "--force", forced]);
    assert.equal(force.stdout, `Released:\n(${forced}, released)\n`);
    assert.equal(existsSync(join(foo.dataDir, "units", forced)), false);
    await bar.start();
    const gone = Date.now() + 15_000;
    while (existsSync(join(foo.dataDir, "units", pending)) && Date.now() < gone) {
      await new Promise((r2) => setTimeout(r2, 100));
    }
    assert.equal(existsSync(join(foo.dataDir, "units", pending)), false, "released here");
    assert.equal(existsSync(join(bar.dataDir, "units", pendingRemote)), false, "and on bar");
    // force-release tried bar once while it was down: bar still has that unit.
    assert.equal((await bar.api(`/api/units/${forcedRemote}`)).status, 200);
    const list = await ctl(["work", "list"]);
    assert.doesNotMatch(list.stdout, new RegExp(`${pending}|${forced}`));
  });

  it("ttl: remote work that cannot start in time fails as expired", async () => {
    await bar.stop();
    const r = await ctl([
      "work",
      "submit",
      "ticker",
      "--node",
      "bar",
      "--ttl",
      "1s",
      "--no-payload",
    ]);
    const id = /Unit ID: (\w+)/.exec(r.stdout)![1]!;
    const u = await waitForUnit(foo, id, (x) => x.state === "Failed", "to expire");
    assert.match(u.detail, /^Work unit expired on \d{4}-/);
    const local = await ctl(["work", "submit", "ticker", "--ttl", "1s", "--no-payload"]);
    assert.equal(local.code, 101);
    assert.match(local.stderr, /ttl option is intended for remote work only/);

    // colony work submit -f says why the unit waits, once, instead of printing nothing.
    const follow = startCli([
      "work",
      "submit",
      "ticker",
      "--node",
      "bar",
      "-f",
      "--socket",
      foo.socket,
    ]);
    const until = Date.now() + 15_000;
    while (!/is pending/.test(follow.stderr()) && Date.now() < until) {
      await new Promise((r2) => setTimeout(r2, 100));
    }
    await new Promise((r2) => setTimeout(r2, 2500)); // more tries: still said once
    follow.child.kill("SIGINT");
    const said = (await follow.result).stderr;
    assert.match(
      said,
      /^colony work: unit (\w{8}) is pending: waiting to submit: cannot reach bar \(.*\): ECONNREFUSED; it keeps trying \(colony work cancel \1 stops it\)\n/,
    );
    assert.equal(said.match(/is pending/g)?.length, 1, said);
    const waiting = /unit (\w{8}) is pending/.exec(said)![1]!;
    await ctl(["work", "release", "--force", waiting]);
    await bar.start();
  });
});
