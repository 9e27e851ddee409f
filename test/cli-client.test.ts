/**
 * The CLI's client commands end to end: the real `bin/colony.js` as a child process
 * against a real server on loopback (real SQLite file, real processes, auth on). The
 * CLI finds the server and the admin token through the data dir, as on the server's
 * own machine. These are the sessions docs/cli.md shows.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ROOT, runCli, runCliClosingStdout, startCli, tempDir } from "./support/cli.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";

const SLEEPY = `job_type: sleepy
tasks:
- task_type: nap
  script: ['echo napping', 'sleep 30']
- task_type: wake
  always_run: true
  script: [echo woke]
`;
const BROKEN = "job_type: broken\ntasks:\n- task_type: a\n  scrpt: [echo a]\n";
const FAILING = "job_type: failing\ntasks:\n- task_type: boom\n  script: ['echo boom', 'exit 3']\n";

async function until(what: string, probe: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("colony client commands (CLI against a server)", () => {
  let server: TestServer;
  const files = tempDir("colony-cli-files-");
  let env: NodeJS.ProcessEnv;
  const colony = (...args: string[]) => runCli(args, { env });
  const file = (name: string, text: string) => {
    const path = join(files.path, name);
    writeFileSync(path, text);
    return path;
  };

  before(async () => {
    server = await startTestServer();
    // Found like on the server's machine: server.json and admin.token in the data dir.
    env = {
      COLONY_DATA_DIR: server.dataDir,
      COLONY_SERVER: "",
      COLONY_TOKEN: "",
      COLONY_TOKEN_FILE: "",
    };
  });
  after(async () => {
    await server?.close();
    files.remove();
  });

  it("explains every command with --help", async () => {
    for (const [cmd, pattern] of [
      ["submit", /--follow/],
      ["jobs", /colony jobs logs <id>/],
      ["definitions", /colony definitions apply/],
      ["token", /--role reader\|writer\|admin\|ant/],
    ] as const) {
      const r = await colony(cmd, "--help");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, pattern);
      assert.match(r.stdout, /--server URL/);
    }
    const top = await colony("--help");
    assert.match(top.stdout, /submit <file\|TYPE>/);
    // docs/cli.md quotes colony run's help: it must stay the same.
    const docs = readFileSync(join(ROOT, "docs", "cli.md"), "utf8");
    const runHelp = (await colony("run", "--help")).stdout.split("\nExamples:")[0]!;
    assert.ok(docs.includes(runHelp), "docs/cli.md quotes the current 'colony run --help'");
  });

  it("submit --follow: saves the definition, prints prefixed live output, exits 0 when COMPLETED", async () => {
    const r = await colony("submit", "examples/hello-dag.yaml", "--follow");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[greet\] hello, colony$/m);
    assert.match(r.stdout, /^\[count\] count 3$/m);
    assert.match(r.stdout, /^\[letters\] letter c$/m);
    assert.match(r.stdout, /^\[report\] both branches done after hello-colony$/m);
    assert.match(r.stderr, /saved definition hello-dag \(version \d+\)/);
    assert.match(r.stderr, /^\[report\] ✓ COMPLETED exit 0$/m);
    assert.match(r.stderr, /job \d+ \(hello-dag\) COMPLETED/);
    assert.match(r.stderr, /TASK\s+STATE\s+TRY/);
    // A task shows as started only after the tasks it waited for have ended.
    const at = (line: string) => {
      const i = r.stderr.indexOf(line);
      assert.ok(i >= 0, `${line} in ${r.stderr}`);
      return i;
    };
    for (const [before, after] of [
      ["greet", "count"],
      ["greet", "letters"],
      ["count", "report"],
      ["letters", "report"],
      ["report", "cleanup"],
    ]) {
      assert.ok(
        at(`[${before}] ✓ COMPLETED`) < at(`[${after}] started`),
        `${before} ends before ${after} starts:\n${r.stderr}`,
      );
    }

    const listed = await colony("definitions", "list");
    assert.match(listed.stdout, /^hello-dag\s+\d+\s+5\s/m);
  });

  it("submit --follow exits 1 when the job fails; an invalid file exits 2 with file:line:column", async () => {
    const r = await colony("submit", "examples/timeout.yaml", "--follow");
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^\[slow\] starting something slow$/m);
    assert.match(r.stdout, /^\[notify\] slow task ended; notifying$/m);
    assert.match(r.stderr, /\[slow\] ✗ FAILED — timed out/);
    assert.match(r.stderr, /job \d+ \(timeout-demo\) FAILED/);

    const again = await colony("submit", "examples/timeout.yaml", "--at", "2099-01-01T00:00:00Z");
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /definition timeout-demo unchanged \(version 1\)/);
    assert.match(again.stdout, /^job \d+ \(timeout-demo\) PENDING until 2099-01-01T00:00:00.000Z/m);
    const past = await colony("submit", "hello-dag", "--at", "2020-01-01T00:00:00Z");
    assert.equal(past.code, 0, past.stderr);
    assert.match(
      past.stdout,
      /^job \d+ \(hello-dag\) PENDING \(2020-01-01T00:00:00.000Z is past: it runs now\)/m,
    );

    const broken = file("broken.yaml", BROKEN);
    const bad = await colony("submit", broken);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      new RegExp(
        `^${broken}:4:3: tasks\\[0\\]\\.scrpt: unknown key 'scrpt'; did you mean 'script'\\?`,
      ),
    );

    const folder = await colony("submit", files.path);
    assert.equal(folder.code, 2);
    assert.equal(
      folder.stderr,
      `colony submit: ${files.path} is a directory; give a job file (job.yaml) or a saved job type\n`,
    );
  });

  it("submit JOB_TYPE --param --json, then jobs logs -f and jobs logs --task", async () => {
    const r = await colony("submit", "hello-dag", "--param", "Name=world", "--json");
    assert.equal(r.code, 0, r.stderr);
    const job = JSON.parse(r.stdout) as {
      id: number;
      job_type: string;
      params: Record<string, string>;
    };
    assert.equal(job.job_type, "hello-dag");
    assert.deepEqual(job.params, { Name: "world" });

    const logs = await colony("jobs", "logs", String(job.id), "-f");
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^\[greet\] hello, world$/m);
    assert.match(logs.stdout, /^\[report\] both branches done after hello-world$/m);
    assert.match(logs.stderr, new RegExp(`job ${job.id} \\(hello-dag\\) COMPLETED`));

    const one = await colony("jobs", "logs", String(job.id), "--task", "count");
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, "count 1\ncount 2\ncount 3\n");

    const all = await colony("jobs", "logs", String(job.id));
    assert.match(all.stdout, /^\[letters\] letter a$/m);
    assert.equal(all.stderr, "", "no attempt lines when every task ran once");
  });

  it("jobs logs of a retried task: every try's output, each try named on stderr; --task the last", async () => {
    const r = await colony("submit", "examples/retry.yaml", "--follow");
    assert.equal(r.code, 0, r.stderr);
    const id = /job (\d+) \(retry-demo\) COMPLETED/.exec(r.stderr)?.[1];
    assert.ok(id, r.stderr);
    const all = await colony("jobs", "logs", id);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(
      all.stdout,
      "[flaky] try 1\n[flaky] try 2\n[flaky] try 3\n[done] succeeded after retries\n",
    );
    assert.equal(
      all.stderr,
      "[flaky] (attempt 1, FAILED)\n[flaky] (attempt 2, FAILED)\n[flaky] (attempt 3, COMPLETED)\n",
    );
    const last = await colony("jobs", "logs", id, "--task", "flaky");
    assert.equal(last.stdout, "try 3\n");
  });

  it("jobs logs into a pipe that closes early (| head -1) ends quietly with 0", async () => {
    const many = file(
      "many.yaml",
      "job_type: many\ntasks:\n- task_type: a\n  script: ['seq 1 200000']\n",
    );
    const submitted = await colony("submit", many, "--follow");
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = /job (\d+) \(many\)/.exec(submitted.stderr)![1]!;
    const r = await runCliClosingStdout(["jobs", "logs", id], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "[a] 1\n");
    assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/);
  });

  it("jobs list (filters, --json), jobs show, jobs restart", async () => {
    const failing = file("failing.yaml", FAILING);
    const submitted = await colony("submit", failing, "--follow");
    assert.equal(submitted.code, 1);
    const id = /job (\d+) \(failing\) FAILED/.exec(submitted.stderr)?.[1];
    assert.ok(id, submitted.stderr);

    const list = await colony("jobs", "list");
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+TYPE\s+STATE\s+RUN\s+CREATED\s+TOOK\s+BY$/m);
    assert.match(list.stdout, new RegExp(`^${id}\\s+failing\\s+FAILED\\s+1\\s+.*admin$`, "m"));
    assert.match(list.stdout, /hello-dag\s+COMPLETED/);

    const failed = await colony("jobs", "list", "--state", "FAILED", "--json");
    const page = JSON.parse(failed.stdout) as { items: Array<{ state: string }> };
    assert.ok(page.items.length >= 2);
    assert.ok(page.items.every((j) => j.state === "FAILED"));
    const typo = await colony("jobs", "list", "--state", "failed,DONE");
    assert.equal(typo.code, 2);
    assert.match(
      typo.stderr,
      /^colony jobs: --state: unknown state 'DONE'; use one or more of PENDING,/,
    );

    const paged = await colony("jobs", "list", "--limit", "1");
    assert.equal(paged.stdout.trim().split("\n").length, 2);
    assert.match(paged.stderr, /more: colony jobs list --limit 1 --cursor \d+/);

    const show = await colony("jobs", "show", id);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`^job ${id} \\(failing\\) FAILED`, "m"));
    assert.match(show.stdout, /^boom\s+FAILED\s+1\s+3\s/m);

    const restart = await colony("jobs", "restart", id);
    assert.equal(restart.code, 0, restart.stderr);
    assert.match(restart.stdout, new RegExp(`job ${id} \\(failing\\) restarted: run 2`));
    const logs = await colony("jobs", "logs", id, "-f");
    assert.equal(logs.code, 1, "the second run fails too");

    const missing = await colony("jobs", "show", "999999");
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /colony jobs show: no job request '999999'.*\[COLONY_UNKNOWN_JOB_REQUEST\]/,
    );
    const notId = await colony("jobs", "show", "abc");
    assert.equal(notId.code, 2);
  });

  it("jobs cancel stops a running job while jobs logs -f follows it", async () => {
    const sleepy = file("sleepy.yaml", SLEEPY);
    const r = await colony("submit", sleepy, "--json");
    assert.equal(r.code, 0, r.stderr);
    const id = String((JSON.parse(r.stdout) as { id: number }).id);
    const follower = startCli(["jobs", "logs", id, "-f"], { env });
    try {
      await until("napping in the live output", () => /\[nap\] napping/.test(follower.stdout()));
      const cancel = await colony("jobs", "cancel", id);
      assert.equal(cancel.code, 0, cancel.stderr);
      assert.match(cancel.stdout, new RegExp(`job ${id} \\(sleepy\\)`));
      const done = await follower.result;
      assert.equal(done.code, 1, "a cancelled job is not COMPLETED");
      assert.match(done.stdout, /^\[wake\] woke$/m);
      assert.match(done.stderr, /\[nap\] ■ CANCELLED/);
      assert.match(done.stderr, new RegExp(`job ${id} \\(sleepy\\) CANCELLED`));
    } finally {
      follower.child.kill();
    }
    const show = await colony("jobs", "show", id, "--json");
    assert.equal((JSON.parse(show.stdout) as { state: string }).state, "CANCELLED");
  });

  it("definitions apply, list, show --yaml, delete", async () => {
    const a = file(
      "a.yaml",
      "job_type: def-a\ndescription: first\ntasks:\n- task_type: x\n  script: [echo a]\n",
    );
    const b = file("b.yaml", "job_type: def-b\ntasks:\n- task_type: y\n  script: [echo b]\n");
    const applied = await colony("definitions", "apply", a, b);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /^def-a: created \(version 1\)/m);
    assert.match(applied.stdout, /^def-b: created \(version 1\)/m);
    const again = await colony("definitions", "apply", a);
    assert.match(again.stdout, /^def-a: updated \(version 2\)/m);

    const list = await colony("definitions", "list");
    assert.match(list.stdout, /^def-a\s+2\s+1\s+.*first$/m);

    const yaml = await colony("definitions", "show", "def-a", "--yaml");
    assert.equal(
      yaml.stdout,
      "job_type: def-a\ndescription: first\ntasks:\n- task_type: x\n  script: [echo a]\n",
    );
    const shown = await colony("definitions", "show", "def-a");
    assert.match(shown.stdout, /^x\s+SHELL/m);

    const broken = file("broken2.yaml", BROKEN);
    const bad = await colony("definitions", "apply", broken);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      `${broken}:4:3: tasks[0].scrpt: unknown key 'scrpt'; did you mean 'script'?\n`,
    );

    const del = await colony("definitions", "delete", "def-b");
    assert.equal(del.code, 0, del.stderr);
    const gone = await colony("definitions", "show", "def-b");
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no job type 'def-b'/);
  });

  it("token create prints the token once; a reader token reads but cannot submit; revoke ends it", async () => {
    const created = await colony("token", "create", "--role", "reader", "--name", "ci-reader");
    assert.equal(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    assert.match(token, /^\S{20,}$/);
    assert.match(created.stderr, /only time it is shown/);
    assert.doesNotMatch(created.stderr, new RegExp(token), "the token is printed once");
    const id = /(tok_\w+): a reader token named 'ci-reader'/.exec(created.stderr)?.[1];
    assert.ok(id, created.stderr);

    const asReader = (...args: string[]) => colony(...args, "--token", token);
    const read = await asReader("jobs", "list");
    assert.equal(read.code, 0, read.stderr);
    const write = await asReader("submit", "hello-dag");
    assert.equal(write.code, 1);
    assert.match(write.stderr, /needs role writer.*\(token from --token\) \[COLONY_FORBIDDEN\]/);

    const list = await colony("token", "list");
    assert.match(list.stdout, new RegExp(`^${id}\\s+ci-reader\\s+reader\\s+.*active$`, "m"));

    const revoked = await colony("token", "revoke", id);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`${id} \\(ci-reader, reader\\): revoked`));
    const after = await asReader("jobs", "list");
    assert.equal(after.code, 1);
    assert.match(after.stderr, /unknown or revoked.*\[COLONY_UNAUTHENTICATED\]/);
  });

  it("without a token, a 401 names the admin token file it looked for and how to point at the server's", async () => {
    // The server's URL but not its data dir: run in another directory, as a user who
    // started the server with --data-dir elsewhere would.
    const bare = { ...env, COLONY_DATA_DIR: "", COLONY_SERVER: server.url };
    const r = await runCli(["jobs", "list"], { env: bare, cwd: files.path });
    assert.equal(r.code, 1);
    const looked = join(files.path, ".colony", "admin.token");
    assert.match(r.stderr, /\[COLONY_UNAUTHENTICATED\]/);
    assert.ok(r.stderr.includes(`no token was sent (there is no ${looked})`), r.stderr);
    assert.match(r.stderr, /give its data dir \(--data-dir DIR or COLONY_DATA_DIR\)/);
    // Given the data dir, the same command finds the token there.
    const found = await runCli(["jobs", "list", "--data-dir", server.dataDir], {
      env: bare,
      cwd: files.path,
    });
    assert.equal(found.code, 0, found.stderr);
  });

  it("--config (or $COLONY_CONFIG) finds the server through the config's data_dir, host and port", async () => {
    const bare = { ...env, COLONY_DATA_DIR: "" };
    // data_dir is relative to the config file, as for 'colony server --config'.
    const config = file("colony.yaml", `data_dir: ${server.dataDir}\n`);
    const listed = await runCli(["definitions", "list", "--config", config], { env: bare });
    assert.equal(listed.code, 0, listed.stderr);
    const fromEnv = await runCli(["jobs", "list"], { env: { ...bare, COLONY_CONFIG: config } });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    // A server not started yet: the config's port, and the file is named as the source.
    const idle = file("idle.yaml", "data_dir: ./idle-data\nport: 1\n");
    const down = await runCli(["jobs", "list", "--config", idle], { env: bare });
    assert.equal(down.code, 1);
    assert.match(
      down.stderr,
      new RegExp(`cannot reach http://127\\.0\\.0\\.1:1 \\(from ${idle}\\)`),
    );
    const broken = file("broken.yaml", "data_dir: ./x\nprot: 7\n");
    const bad = await runCli(["jobs", "list", "--config", broken], { env: bare });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, new RegExp(`^colony jobs: ${broken}:2:1: unknown key 'prot'`));
  });

  it("says plainly when the server cannot be reached, and where its address came from", async () => {
    const flag = await colony("jobs", "list", "--server", "http://127.0.0.1:1");
    assert.equal(flag.code, 1);
    assert.equal(
      flag.stderr,
      "colony: cannot reach http://127.0.0.1:1 (from --server); is 'colony server' running? Set --server or COLONY_SERVER\n",
    );
    const fromEnv = await runCli(["definitions", "list"], {
      env: { ...env, COLONY_SERVER: "http://127.0.0.1:1" },
    });
    assert.match(fromEnv.stderr, /cannot reach http:\/\/127\.0\.0\.1:1 \(from \$COLONY_SERVER\)/);
  });
});
