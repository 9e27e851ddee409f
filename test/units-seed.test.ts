/**
 * Seed 002 end to end: two real `colony server` processes, foo and bar (bar over https),
 * configured like the seed's foo.yml and bar.yml, and every seed command run with
 * receptorctl against foo's control socket (the real one when COLONY_RECEPTORCTL is
 * set, else test/support/receptorctl.ts, which speaks its protocol byte for byte).
 * Then the same through `colony work`, the REST API and the control service on TLS.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ControlClient } from "../src/units/control-client.ts";
import { PassThrough, Readable } from "node:stream";
import { workCommand } from "../src/cli/work-command.ts";
import { runCli, tempDir } from "./support/cli.ts";
import { freePort, Node, waitForUnit } from "./support/nodes.ts";
import { receptorctl } from "./support/receptorctl.ts";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.ts";
import { waitUntil } from "./support/server-harness.ts";

const dir = tempDir("colony-units-");
let foo: Node;
let bar: Node;
let certs: TestCerts;
let controlTcpPort: number;

const ctl = (args: string[], stdin?: string) =>
  receptorctl(["--socket", foo.socket, ...args], stdin === undefined ? {} : { stdin });

function unitIdOf(stdout: string): string {
  const m = /^Result: Job Started\nUnit ID: ([A-Za-z0-9]{8})\n$/.exec(stdout);
  assert.ok(m, `receptorctl printed the seed's two lines, got ${JSON.stringify(stdout)}`);
  return m[1]!;
}

function unitFile(node: Node, id: string, name: string): string {
  return readFileSync(join(node.dataDir, "units", id, name), "utf8");
}

function statusFile(node: Node, id: string): Record<string, unknown> {
  return JSON.parse(unitFile(node, id, "status")) as Record<string, unknown>;
}

async function workList(): Promise<Record<string, Record<string, unknown>>> {
  const r = await ctl(["work", "list"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, Record<string, unknown>>;
}

/** A raw control connection: greeting read, then request/answer lines. */
async function rawConnection(path: string) {
  const socket = net.connect(path);
  let buf = "";
  const waiters: Array<() => void> = [];
  socket.setEncoding("utf8");
  let ended = false;
  socket.on("data", (c: string) => {
    buf += c;
    for (const w of waiters.splice(0)) w();
  });
  socket.on("close", () => {
    ended = true;
    for (const w of waiters.splice(0)) w();
  });
  const line = async () => {
    while (!buf.includes("\n")) {
      if (ended) return "(connection closed)";
      await new Promise<void>((r) => waiters.push(r));
    }
    const i = buf.indexOf("\n");
    const l = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return l;
  };
  const greeting = await line();
  return {
    greeting,
    async ask(request: string) {
      socket.write(request + "\n");
      return line();
    },
    close: () => socket.destroy(),
  };
}

before(async () => {
  certs = makeTestCerts(dir.path);
  const [fooPort, barPort] = await Promise.all([freePort(), freePort()]);
  controlTcpPort = await freePort();
  bar = new Node(dir.path, "bar", barPort);
  bar.useTls(certs.serverCert, certs.serverKey, certs.caCert);
  bar.configure(`work_types:
  - work_type: echoint
    command: bash
    params: "-c \\"for i in {1..4}; do echo $i; sleep 0.1; done\\""
  - work_type: echopayload
    command: bash
    params: "-c \\"while read -r line; do echo \${line^^}; sleep 0.1; done\\""
  - work_type: slow
    command: bash
    params: "-c \\"echo started; exec sleep 60\\""
  - work_type: secretive
    command: bash
    params: "-c \\"echo the token has \${#SECRET_TOKEN} characters\\""
`);
  await bar.start();
  const token = await bar.token("writer", "foo");
  foo = new Node(dir.path, "foo", fooPort);
  foo.configure(`work_types:
  - work_type: echoint
    command: bash
    params: "-c \\"for i in {1..3}; do echo $i; sleep 0.05; done\\""
  - work_type: slow
    command: bash
    params: "-c \\"echo started; exec sleep 60\\""
  - work_type: fails
    command: bash
    params: "-c \\"echo oops; exit 3\\""
  - work_type: hello
    command: echo
    params: hello
    allow_runtime_params: true
  - work_type: fixed
    command: echo
    params: fixed
peers:
  - node_id: bar
    url: ${bar.url}
    token: ${token}
    ca_file: ${certs.caCert}
units:
  remote_poll: 200ms
  remote_retry_max: 1s
  control_tcp:
    port: ${controlTcpPort}
    cert: ${certs.serverCert}
    key: ${certs.serverKey}
    client_ca: ${certs.caCert}
`);
  await foo.start();
});

after(async () => {
  await Promise.all([foo?.stop(), bar?.stop()]);
  dir.remove();
});

describe("seed 002 with receptorctl against foo's control socket", () => {
  it("the control socket is a 0600 Unix socket in the data dir that greets with the node id", async () => {
    const mode = statSync(foo.socket).mode;
    assert.ok(statSync(foo.socket).isSocket());
    assert.equal(mode & 0o777, 0o600);
    const conn = await rawConnection(foo.socket);
    assert.equal(conn.greeting, "Receptor Control, node foo");
    const version = JSON.parse(
      await conn.ask('{"command":"status","requested_fields":["Version"]}'),
    ) as Record<string, unknown>;
    assert.deepEqual(Object.keys(version), ["Version"]);
    const status = JSON.parse(await conn.ask("status")) as {
      NodeID: string;
      Advertisements: { WorkCommands: { WorkType: string }[] }[];
    };
    assert.equal(status.NodeID, "foo");
    assert.ok(status.Advertisements[0]!.WorkCommands.some((w) => w.WorkType === "echoint"));
    const ping = JSON.parse(await conn.ask("ping bar")) as { Success: boolean; From: string };
    assert.deepEqual([ping.Success, ping.From], [true, "bar"]);
    conn.close();
  });

  it("local work: work submit echoint --no-payload, then work results", async () => {
    const submitted = await ctl(["work", "submit", "echoint", "--no-payload"]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = unitIdOf(submitted.stdout);
    const results = await ctl(["work", "results", id]);
    assert.equal(results.code, 0, results.stderr);
    assert.equal(results.stdout, "1\n2\n3\n");
    // The unit on disk, as the seed shows it.
    assert.deepEqual(statusFile(foo, id), {
      State: 2,
      Detail: "exit status 0",
      StdoutSize: 6,
      WorkType: "echoint",
      ExtraData: null,
    });
    assert.equal(unitFile(foo, id, "stdin"), "");
    assert.equal(unitFile(foo, id, "stdout"), "1\n2\n3\n");
  });

  it("remote work: work submit echoint --node bar runs it on bar and streams it back", async () => {
    const submitted = await ctl(["work", "submit", "echoint", "--node", "bar", "--no-payload"]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = unitIdOf(submitted.stdout);
    const results = await ctl(["work", "results", id]);
    assert.equal(results.code, 0, results.stderr);
    assert.equal(results.stdout, "1\n2\n3\n4\n");
    const mine = statusFile(foo, id);
    assert.equal(mine.WorkType, "remote");
    assert.equal(mine.State, 2);
    assert.equal(mine.StdoutSize, 8);
    const extra = mine.ExtraData as Record<string, unknown>;
    assert.deepEqual(Object.keys(extra), [
      "RemoteNode",
      "RemoteWorkType",
      "RemoteParams",
      "RemoteUnitID",
      "RemoteStarted",
      "LocalCancelled",
      "LocalReleased",
      "SignWork",
      "TLSClient",
      "Expiration",
    ]);
    assert.equal(extra.RemoteNode, "bar");
    assert.equal(extra.RemoteWorkType, "echoint");
    assert.equal(extra.RemoteStarted, true);
    assert.equal(extra.Expiration, "0001-01-01T00:00:00Z");
    const remoteId = extra.RemoteUnitID as string;
    assert.match(remoteId, /^[A-Za-z0-9]{8}$/);
    assert.notEqual(remoteId, id, "two units, two ids");
    const theirs = statusFile(bar, remoteId);
    assert.equal(theirs.WorkType, "echoint");
    assert.equal(theirs.State, 2);
    assert.equal(unitFile(bar, remoteId, "stdout"), unitFile(foo, id, "stdout"));
  });

  it("payload: echo -e ... | work submit echopayload --node bar --payload - -f prints it upper-cased", async () => {
    const payload = "hi\ni am foo\nwhat is your name\n";
    const r = await ctl(
      ["work", "submit", "echopayload", "--node", "bar", "--payload", "-", "-f"],
      payload,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "HI\nI AM FOO\nWHAT IS YOUR NAME\n");
    // stdin is the same on both nodes.
    const list = await workList();
    const [id, unit] = Object.entries(list).find(
      ([, u]) =>
        (u.ExtraData as { RemoteWorkType?: string } | null)?.RemoteWorkType === "echopayload",
    )!;
    const remoteId = (unit.ExtraData as { RemoteUnitID: string }).RemoteUnitID;
    assert.equal(unitFile(foo, id, "stdin"), payload);
    assert.equal(unitFile(bar, remoteId, "stdin"), payload);
    assert.equal(unitFile(bar, remoteId, "stdout"), "HI\nI AM FOO\nWHAT IS YOUR NAME\n");
    assert.equal(statusFile(foo, id).StdoutSize, 30);
  });

  it("work list: every unit with Detail, ExtraData, State, StateName, StdoutSize, WorkType", async () => {
    const list = await workList();
    assert.ok(Object.keys(list).length >= 3);
    for (const [id, unit] of Object.entries(list)) {
      assert.match(id, /^[A-Za-z0-9]{8}$/);
      assert.deepEqual(Object.keys(unit).sort(), [
        "Detail",
        "ExtraData",
        "State",
        "StateName",
        "StdoutSize",
        "WorkType",
      ]);
    }
    const quiet = await ctl(["work", "list", "-q"]);
    assert.deepEqual(quiet.stdout.trim().split("\n").sort(), Object.keys(list).sort());
  });

  it("work cancel stops a local unit, and a remote one on the peer too", async () => {
    const local = unitIdOf((await ctl(["work", "submit", "slow", "--no-payload"])).stdout);
    const remote = unitIdOf(
      (await ctl(["work", "submit", "slow", "--node", "bar", "--no-payload"])).stdout,
    );
    await waitForUnit(foo, remote, (u) => u.state === "Running", "to run on bar");
    const r = await ctl(["work", "cancel", local, remote]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Cancelled:\n(${local}, cancelled)\n(${remote}, cancelled)\n`);
    const list = await workList();
    assert.equal(list[local]!.StateName, "Canceled");
    const remoteId = (list[remote]!.ExtraData as { RemoteUnitID: string }).RemoteUnitID;
    await waitForUnit(bar, remoteId, (u) => u.state === "Canceled", "canceled on bar");
    await waitForUnit(foo, remote, (u) => u.state === "Canceled", "canceled on foo");
    assert.equal(unitFile(foo, local, "stdout"), "started\n");
  });

  it("work release deletes the files, here and on the peer; --force as well", async () => {
    const local = unitIdOf((await ctl(["work", "submit", "echoint", "--no-payload"])).stdout);
    const remote = unitIdOf(
      (await ctl(["work", "submit", "slow", "--node", "bar", "--no-payload"])).stdout,
    );
    const forced = unitIdOf(
      (await ctl(["work", "submit", "echoint", "--node", "bar", "--no-payload"])).stdout,
    );
    const info = await waitForUnit(foo, remote, (u) => u.state === "Running", "to run");
    const remoteId = (info.extra_data as { RemoteUnitID: string }).RemoteUnitID;
    const r = await ctl(["work", "release", local, remote]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Released:\n(${local}, released)\n(${remote}, released)\n`);
    assert.equal(existsSync(join(foo.dataDir, "units", local)), false);
    assert.equal(existsSync(join(foo.dataDir, "units", remote)), false);
    assert.equal(existsSync(join(bar.dataDir, "units", remoteId)), false);
    const f = await ctl(["work", "release", "--force", forced]);
    assert.equal(f.stdout, `Released:\n(${forced}, released)\n`);
    assert.equal(existsSync(join(foo.dataDir, "units", forced)), false);
    const gone = await ctl(["work", "release", local]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`ERROR: ${local}: ERROR: unknown work unit ${local}`));
  });

  it("a failed unit: work results prints its output and exits 1 with the detail", async () => {
    const id = unitIdOf((await ctl(["work", "submit", "fails", "--no-payload"])).stdout);
    const r = await ctl(["work", "results", id]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "oops\n");
    assert.match(r.stderr, /ERROR: Remote unit failed: exit status 3/);
  });

  it("bad lines, unknown commands and unknown ids get ERROR: and the connection stays usable", async () => {
    const conn = await rawConnection(foo.socket);
    const bad = [
      "frobnicate",
      "{not json",
      '{"command": 7}',
      '{"subcommand":"list"}',
      "work",
      "work explode",
      "work status",
      "work status nosuchid",
      "work results nosuchid",
      "work cancel nosuchid",
      "work release nosuchid extra",
      "work results abc notanumber",
      '{"command":"work","subcommand":"submit","node":"foo","worktype":3}',
      "status please",
      "x".repeat(2 * 1024 * 1024),
    ];
    for (const line of bad) {
      const answer = await conn.ask(line);
      assert.match(answer, /^ERROR: \S/, `${line.slice(0, 40)} -> ${answer}`);
    }
    assert.match(await conn.ask("work status nosuchid"), /^ERROR: unknown work unit nosuchid$/);
    assert.match(await conn.ask("frobnicate"), /^ERROR: Unknown command 'frobnicate'/);
    const list = JSON.parse(await conn.ask("work list")) as Record<string, unknown>;
    assert.ok(Object.keys(list).length > 0, "the connection still works");
    assert.ok(JSON.parse(await conn.ask('{"command":"work","subcommand":"list"}')));
    conn.close();
    const results = await ctl(["work", "results", "nosuchid"]);
    assert.equal(results.code, 1);
    assert.match(results.stderr, /ERROR: Failed to get results: unknown work unit nosuchid/);
    const submit = await ctl(["work", "submit", "nosuchtype", "--no-payload"]);
    assert.equal(submit.code, 101);
    assert.match(submit.stderr, /ERROR: Failed to start work unit: .*nosuchtype/);
  });

  it("runtime params are refused unless allowed; secret_* params reach the command, never the disk or the API", async () => {
    const allowed = await ctl(["work", "submit", "hello", "--no-payload", "world"]);
    const id = unitIdOf(allowed.stdout);
    assert.equal((await ctl(["work", "results", id])).stdout, "hello world\n");
    const refused = await ctl(["work", "submit", "fixed", "--no-payload", "-a", "params=more"]);
    assert.equal(refused.code, 101);
    assert.match(refused.stderr, /extra params provided but not allowed/);
    const secret = "s3cr3t-t0ken-value";
    const r = await ctl([
      "work",
      "submit",
      "secretive",
      "--node",
      "bar",
      "-a",
      `secret_token=${secret}`,
      "-n",
      "-f",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `the token has ${secret.length} characters\n`);
    for (const node of [foo, bar]) {
      for (const unit of readdirSync(join(node.dataDir, "units"))) {
        const unitDir = join(node.dataDir, "units", unit);
        for (const file of readdirSync(unitDir)) {
          assert.doesNotMatch(readFileSync(join(unitDir, file), "utf8"), new RegExp(secret));
        }
      }
      const api = await node.api("/api/units?limit=500");
      assert.doesNotMatch(api.text, new RegExp(secret));
    }
    assert.doesNotMatch(JSON.stringify(await workList()), new RegExp(secret));
    const http = await ctl([
      "work",
      "submit",
      "secretive",
      "--node",
      "nosuchnode",
      "-a",
      "secret_x=y",
      "-n",
    ]);
    assert.equal(http.code, 101);
  });
});

describe("colony work, the REST API and the control service on TLS", () => {
  /** `colony work ...` in this process (the CLI module itself), output captured. */
  async function colony(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const out = new PassThrough();
    const err = new PassThrough();
    let stdout = "";
    let stderr = "";
    out.on("data", (c: Buffer) => (stdout += c.toString()));
    err.on("data", (c: Buffer) => (stderr += c.toString()));
    const code = await workCommand([...args, "--socket", foo.socket], {
      stdout: out as unknown as NodeJS.WriteStream,
      stderr: err as unknown as NodeJS.WriteStream,
      stdin: Readable.from([]),
      env: {},
    });
    return { code, stdout, stderr };
  }

  it("colony work submit|list|status|results|cancel|release does the same natively", async () => {
    const submitted = await colony(["submit", "echoint", "--node", "bar"]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = /Unit ID: ([A-Za-z0-9]{8})/.exec(submitted.stdout)![1]!;
    const results = await colony(["results", id]);
    assert.equal(results.stdout, "1\n2\n3\n4\n");
    const status = JSON.parse((await colony(["status", id])).stdout) as Record<string, unknown>;
    assert.equal(status.StateName, "Succeeded");
    const list = await colony(["list"]);
    assert.match(list.stdout, /^UNIT\s+STATE\s+WORK TYPE\s+STDOUT\s+DETAIL/);
    assert.match(
      list.stdout,
      new RegExp(`${id}\\s+Succeeded\\s+echoint@bar\\s+8\\s+exit status 0`),
    );
    const slow = /Unit ID: (\w+)/.exec((await colony(["submit", "slow"])).stdout)![1]!;
    const cancel = await colony(["cancel", slow]);
    assert.equal(cancel.stdout, `${slow} cancelled\n`);
    const release = await colony(["release", slow, id]);
    assert.equal(release.stdout, `${slow} released\n${id} released\n`);
    const unknown = await colony(["status", "nosuchid"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown work unit nosuchid/);
    // And once as a user runs it: the colony command, following a unit that fails.
    const follow = await runCli(["work", "submit", "fails", "-f", "--socket", foo.socket]);
    assert.equal(follow.code, 1);
    assert.equal(follow.stdout, "oops\n");
    assert.match(follow.stderr, /unit \w+ failed: exit status 3/);
  });

  it("GET /api/units lists work units and task executions together, newest first, in pages", async () => {
    const job = await foo.api("/api/job-requests", {
      json: {
        definition: "job_type: unit-demo\ntasks:\n- task_type: a\n  script: [echo from-a-task]\n",
      },
    });
    assert.equal(job.status, 201, job.text);
    const jobId = job.json<{ id: number }>().id;
    await waitUntil("the job to complete", async () => {
      const j = await foo.api(`/api/job-requests/${jobId}`);
      return j.json<{ state: string }>().state === "COMPLETED";
    });
    const unit = unitIdOf((await ctl(["work", "submit", "echoint", "--no-payload"])).stdout);
    const all = await foo.api("/api/units?limit=500");
    const items = all.json<{
      items: { id: string; kind: string; state: string; created_at: string }[];
    }>().items;
    const kinds = new Set(items.map((u) => u.kind));
    assert.deepEqual([...kinds].sort(), ["task", "work"]);
    assert.equal(items[0]!.id, unit, "the newest first");
    const times = items.map((u) => Date.parse(u.created_at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => b - a),
    );
    // Paging visits every unit exactly once.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const page = (await foo.api(`/api/units?limit=3${q}`)).json<{
        items: { id: string }[];
        next_cursor: string | null;
      }>();
      seen.push(...page.items.map((u) => u.id));
      cursor = page.next_cursor;
    } while (cursor !== null);
    assert.deepEqual(
      seen,
      items.map((u) => u.id),
    );
    const task = items.find((u) => u.kind === "task")!;
    const out = await foo.api(`/api/units/${task.id}/stdout`);
    assert.equal(out.text, "from-a-task\n");
    const status = await receptorctl(["--socket", foo.socket, "work", "results", task.id]);
    assert.equal(status.stdout, "from-a-task\n", "task executions are units on the socket too");
    const works = (await foo.api("/api/units?kind=work&limit=500")).json<{
      items: { kind: string }[];
    }>();
    assert.ok(works.items.every((u) => u.kind === "work"));
    const from = await foo.api(`/api/units/${unit}/stdout?offset=2&follow=true`);
    assert.equal(from.text, "2\n3\n");
    assert.equal((await foo.api("/api/units?cursor=nonsense")).status, 400);
  });

  it("the control service on TCP needs a client certificate and speaks the same protocol", async () => {
    const client = certs.client("operator");
    const tlsAddress = `tls://127.0.0.1:${controlTcpPort}`;
    const c = await ControlClient.connect(tlsAddress, {
      ca: certs.caCert,
      cert: client.cert,
      key: client.key,
    });
    assert.equal(c.nodeId, "foo");
    const answer = await c.submit({ node: "localhost", worktype: "echoint" }, undefined);
    assert.equal(answer.result, "Job Started");
    const r = await ControlClient.connect(tlsAddress, {
      ca: certs.caCert,
      cert: client.cert,
      key: client.key,
    });
    let out = "";
    for await (const chunk of await r.results(answer.unitid)) out += String(chunk);
    assert.equal(out, "1\n2\n3\n");
    await assert.rejects(ControlClient.connect(tlsAddress, { ca: certs.caCert }));
  });
});
