/**
 * `colony run` end to end: the real CLI, a real SQLite file, real processes. Every file
 * in examples/ is run here, so the examples cannot rot.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { runCli, runCliClosingStdout, tempDir } from "./support/cli.ts";

describe("colony run (examples)", () => {
  const dir = tempDir();
  after(() => dir.remove());
  const run = (...args: string[]) => runCli(["run", ...args, "--data-dir", dir.path]);

  it("hello-dag: fans out, joins, passes outputs, streams prefixed output, exits 0", async () => {
    const r = await run("examples/hello-dag.yaml");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[greet\] hello, colony$/m);
    assert.match(r.stdout, /^\[count\] count 3$/m);
    assert.match(r.stdout, /^\[letters\] letter c$/m);
    assert.match(r.stdout, /^\[report\] both branches done after hello-colony$/m);
    assert.match(r.stdout, /^\[cleanup\] cleaning up$/m);
    // count and letters ran in parallel: their lines interleave rather than one block after the other.
    const order = r.stdout
      .split("\n")
      .filter((l) => /^\[(count|letters)\]/.test(l))
      .map((l) => l.slice(1, 6));
    assert.notDeepEqual(
      order,
      [...order].sort(),
      `expected interleaved output, got ${order.join(",")}`,
    );
    assert.match(r.stderr, /^colony: job \d+ \(hello-dag\) · 5 tasks · data in /m);
    assert.match(r.stderr, /job \d+ \(hello-dag\) COMPLETED/);
    assert.match(r.stderr, /TASK\s+STATE/);
  });

  it("a run of SHELL tasks loads no module it does not use (schemas, Redis, HTTP client, containers)", async () => {
    // A resolve hook in the CLI's process reports what it loads; a one-task run took
    // ~1.1 s when these modules (~0.45 s of imports) were loaded at start.
    const hook = join(dir.path, "hook.mjs");
    writeFileSync(
      hook,
      `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (/typebox|ioredis|undici|container-options|task-request|docker-executor|kubernetes/.test(r.url)) {
    process.stderr.write("LOADED " + r.url + "\\n");
  }
  return r;
}\n`,
    );
    const register = join(dir.path, "register.mjs");
    writeFileSync(
      register,
      `import { register } from "node:module";\nregister(${JSON.stringify(pathToFileURL(hook).href)});\n`,
    );
    const job = join(dir.path, "one.yaml");
    writeFileSync(job, 'job_type: one\ntasks:\n- task_type: a\n  script: ["echo done"]\n');
    const r = await runCli(["run", job, "--data-dir", dir.path], {
      env: { NODE_OPTIONS: `--import=${pathToFileURL(register).href}` },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[a\] done$/m);
    assert.match(r.stderr, /^colony: job \d+ \(one\) · 1 task · data in /m);
    assert.deepEqual(
      r.stderr.split("\n").filter((l) => l.startsWith("LOADED ")),
      [],
    );
  });

  it("hello-dag with --param overrides a job variable", async () => {
    const r = await run("examples/hello-dag.yaml", "--param", "Name=world");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[greet\] hello, world$/m);
    assert.match(r.stdout, /after hello-world$/m);
  });

  it("on-failed: the failure is routed, after_script runs, job completes", async () => {
    const r = await run("examples/on-failed.yaml");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[deploy\] after_script runs anyway$/m);
    assert.match(r.stdout, /^\[rollback\] rolling back$/m);
    assert.doesNotMatch(r.stdout, /\[announce\]/);
  });

  it("retry: fails twice, succeeds on the third try", async () => {
    const r = await run("examples/retry.yaml");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\[flaky\] try 3$/m);
    assert.match(r.stdout, /^\[done\] succeeded after retries$/m);
  });

  it("into a pipe that closes early (| head -1), the job still runs to its end", async () => {
    const dir = tempDir("colony-run-pipe-");
    try {
      const job = join(dir.path, "many.yaml");
      writeFileSync(job, "job_type: many\ntasks:\n- task_type: a\n  script: ['seq 1 200000']\n");
      const r = await runCliClosingStdout(["run", job, "--data-dir", dir.path]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "[a] 1\n");
      assert.match(r.stderr, /job \d+ \(many\) COMPLETED/);
      assert.doesNotMatch(r.stderr, /EPIPE|Unhandled/);
    } finally {
      dir.remove();
    }
  });

  it("timeout: the slow task is killed, always_run runs, exit code 1", async () => {
    const started = Date.now();
    const r = await run("examples/timeout.yaml");
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - started < 20_000, "the 30 s sleep must not run to its end");
    assert.match(r.stderr, /\[slow\] ✗ FAILED.*timed out/);
    assert.match(r.stdout, /^\[notify\] slow task ended; notifying$/m);
    assert.match(r.stderr, /job \d+ \(timeout-demo\) FAILED/);
  });

  it("--json prints the final job as the API shows it, secret params masked", async () => {
    const r = await run("examples/on-failed.yaml", "--json", "--quiet");
    assert.equal(r.code, 0, r.stderr);
    const record = JSON.parse(r.stdout) as {
      job_type: string;
      state: string;
      tasks: { task_type: string; state: string }[];
    };
    assert.equal(record.job_type, "on-failed-demo");
    assert.equal(record.state, "COMPLETED");
    assert.deepEqual(record.tasks.map((t) => `${t.task_type}:${t.state}`).sort(), [
      "deploy:FAILED",
      "rollback:COMPLETED",
    ]);

    const secret = join(dir.path, "secret.yaml");
    writeFileSync(
      secret,
      "job_type: secret-param\njob_variables:\n  Token: {value: sealed-default, secret: true}\ntasks:\n- task_type: a\n  script: ['echo $Token']\n",
    );
    const masked = await run(secret, "--param", "Token=given-secret-42", "--json");
    assert.equal(masked.code, 0, masked.stderr);
    assert.doesNotMatch(masked.stdout + masked.stderr, /given-secret-42|sealed-default/);
    assert.equal(
      (JSON.parse(masked.stdout) as { params: { Token: string } }).params.Token,
      "********",
    );
  });

  it("a malformed definition exits 2 with file:line:column and changes nothing", async () => {
    const bad = tempDir();
    try {
      const { writeFileSync } = await import("node:fs");
      writeFileSync(
        `${bad.path}/bad.yaml`,
        "job_type: x\ntasks:\n- task_type: a\n  on_complete: b\n",
      );
      const r = await runCli(["run", `${bad.path}/bad.yaml`, "--data-dir", bad.path]);
      assert.equal(r.code, 2);
      assert.equal(
        r.stderr,
        `${bad.path}/bad.yaml:4:3: tasks[0].on_complete: unknown key 'on_complete'; did you mean 'on_completed'?\n`,
      );
    } finally {
      bad.remove();
    }
  });

  it("DOCKER tasks use the engine DOCKER_HOST names (no colony.yaml needed)", async () => {
    const job = join(dir.path, "docker-host.yaml");
    writeFileSync(
      job,
      "job_type: docker-host\ntasks:\n- task_type: d\n  method: DOCKER\n  container: {image: busybox}\n  script: [echo]\n",
    );
    const socket = join(dir.path, "no-engine.sock");
    const r = await runCli(["run", job, "--data-dir", dir.path], {
      env: { DOCKER_HOST: `unix://${socket}` },
    });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `cannot reach the Docker engine at unix://${socket} \\(ENOENT\\); start dockerd, or point colony at it: docker.host in colony.yaml, or DOCKER_HOST`,
      ),
    );
  });

  it("--config gives DOCKER and MESSAGING tasks docker.host and messaging.redis_url", async () => {
    const socket = join(dir.path, "config-engine.sock");
    const config = join(dir.path, "run-config.yaml");
    writeFileSync(
      config,
      `docker:\n  host: unix://${socket}\nmessaging:\n  redis_url: redis://127.0.0.1:2\n`,
    );
    const jobs = {
      docker:
        "job_type: config-docker\ntasks:\n- task_type: d\n  method: DOCKER\n  container: {image: busybox}\n  script: [echo]\n",
      redis:
        "job_type: config-redis\ntimeout: 20s\ntasks:\n- task_type: m\n  method: MESSAGING\n  messaging_request_queue: req\n  messaging_reply_queue: rep\n",
    };
    const env = { DOCKER_HOST: "", COLONY_REDIS_URL: "" };
    for (const [name, text] of Object.entries(jobs))
      writeFileSync(join(dir.path, `${name}.yaml`), text);
    const docker = await runCli(
      ["run", join(dir.path, "docker.yaml"), "--data-dir", dir.path, "--config", config],
      { env },
    );
    assert.equal(docker.code, 1);
    assert.match(docker.stderr, new RegExp(`cannot reach the Docker engine at unix://${socket} `));
    const redis = await runCli(
      ["run", join(dir.path, "redis.yaml"), "--data-dir", dir.path, "--config", config],
      { env },
    );
    assert.equal(redis.code, 1);
    assert.match(
      redis.stderr,
      /cannot use Redis at redis:\/\/127\.0\.0\.1:2: connect ECONNREFUSED/,
    );
    // A config file with a mistake is refused before anything runs, naming the key.
    writeFileSync(config, "docker:\n  hots: unix:///x.sock\n");
    const refused = await runCli(
      ["run", join(dir.path, "docker.yaml"), "--data-dir", dir.path, "--config", config],
      { env },
    );
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /run-config\.yaml:2:3: unknown key 'docker\.hots'/);
  });

  it("MESSAGING tasks use the Redis COLONY_REDIS_URL names (no colony.yaml needed)", async () => {
    const job = join(dir.path, "redis-url.yaml");
    writeFileSync(
      job,
      "job_type: redis-url\ntimeout: 20s\ntasks:\n- task_type: m\n  method: MESSAGING\n  messaging_request_queue: req\n  messaging_reply_queue: rep\n",
    );
    const r = await runCli(["run", job, "--data-dir", dir.path], {
      env: { COLONY_REDIS_URL: "redis://127.0.0.1:1" },
    });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot use Redis at redis:\/\/127\.0\.0\.1:1: connect ECONNREFUSED/);
  });

  it("a data dir it cannot create or write exits 1 saying which and what to give", async () => {
    const r = await runCli(["run", "examples/hello-dag.yaml", "--data-dir", "package.json/data"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^colony run: cannot use \/.*\/package\.json\/data as the data dir: a part of the path is a file, not a directory \(ENOTDIR\); give a directory user \S+ can write \(--data-dir, \$COLONY_DATA_DIR, .*\) \[COLONY_DATA_DIR\]\n$/,
    );
  });

  it("a directory, a missing file or a --resume of no id exit 2 saying what to give", async () => {
    const cases: Array<[string[], string]> = [
      [[dir.path], `colony run: ${dir.path} is a directory; give a job file (job.yaml)`],
      [["no-such.yaml"], "colony run: no such file: no-such.yaml"],
      [
        ["--resume", "hello.yaml"],
        "colony run: --resume takes a job request id (or none: every unfinished job), not 'hello.yaml'",
      ],
    ];
    for (const [args, message] of cases) {
      const r = await run(...args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `${message}\n`);
    }
  });
});
