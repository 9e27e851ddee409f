/**
 * The engine end to end on the embedded runtime: a real SQLite file, the real shell
 * executor and real processes. Covers what the examples do not: cancel, job timeout,
 * job retry, max_concurrency, secrets masking, outputs between tasks.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { openEmbedded, type Embedded } from "../src/runtime/embedded.ts";
import { tempDir } from "./support/cli.ts";

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

describe("engine (embedded, real processes)", () => {
  const dir = tempDir();
  let rt: Embedded;
  before(async () => {
    rt = await openEmbedded({ dataDir: dir.path, killGraceMs: 500, engine: { pollMs: 50 } });
    await rt.engine.start();
  });
  after(async () => {
    await rt.close({ cancelRunning: true });
    dir.remove();
  });

  const submit = (yaml: string, params?: Record<string, unknown>) =>
    rt.engine.submit({ definition: parseJobDefinition(yaml), params });

  it("cancel kills running tasks, runs always_run, ends CANCELLED", async () => {
    const marker = join(dir.path, "cancel-cleanup");
    const job = await submit(`job_type: cancel-me
tasks:
- task_type: long
  script: ["sleep 30"]
- task_type: cleanup
  always_run: true
  script: ["touch ${marker}"]
`);
    await waitForTask(rt, job.id, "long", "EXECUTING");
    const started = Date.now();
    await rt.engine.cancel(job.id);
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "CANCELLED");
    assert.ok(Date.now() - started < 10_000);
    const view = await rt.engine.getJob(job.id);
    assert.equal(view.tasks.find((t) => t.taskType === "long")?.state, "CANCELLED");
    assert.equal(view.tasks.find((t) => t.taskType === "cleanup")?.state, "COMPLETED");
    assert.ok(existsSync(marker), "always_run task ran after the cancel");
  });

  it("a job timeout stops the job and fails it with COLONY_JOB_TIMEOUT", async () => {
    const job = await submit(`job_type: job-timeout
timeout: 500ms
tasks:
- task_type: a
  script: ["sleep 30"]
`);
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "FAILED");
    assert.equal(final.errorCode, "COLONY_JOB_TIMEOUT");
  });

  it("a restarted job, and a retried one, get their whole timeout again", async () => {
    // On the old code the timeout counted from the first attempt's start, so a job
    // restarted after that long ended at once with COLONY_JOB_TIMEOUT.
    const ok = join(dir.path, "restart-timeout-ok");
    const job = await submit(`job_type: restart-timeout
timeout: 1s
retry: 1
delay_between_retries: 1200ms
tasks:
- task_type: a
  script: ["test -f ${ok} || { touch ${ok}.seen; exit 1; }", "sleep 0.3"]
`);
    // The first attempt fails; its retry starts 1.2 s later, past the first one's 1 s.
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "FAILED");
    assert.equal(final.attempt, 1);
    assert.equal(
      final.errorCode,
      "COLONY_TASK_FAILED",
      "the retry failed by itself, not timed out",
    );
    await sleep(1100);
    writeFileSync(ok, "");
    const restarted = await rt.engine.restart(job.id);
    assert.equal(restarted.startedAt, undefined, "the new attempt has not started yet");
    const again = await rt.engine.waitFor(job.id);
    assert.equal(again.state, "COMPLETED", again.errorMessage);
    assert.ok(
      again.endedAt!.getTime() - again.startedAt!.getTime() < 1000,
      "started_at and ended_at are the attempt's",
    );
  });

  it("job-level retry runs the whole DAG again as a new attempt", async () => {
    const counter = join(dir.path, "job-retry-count");
    const job = await submit(`job_type: job-retry
retry: 1
tasks:
- task_type: a
  script: ["echo x >> ${counter}"]
  on_completed: b
- task_type: b
  script: ['test $(wc -l < ${counter}) -ge 2']
`);
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "COMPLETED");
    assert.equal(final.attempt, 1);
    const view = await rt.engine.getJob(job.id);
    assert.deepEqual(
      view.tasks.map((t) => `${t.jobAttempt}:${t.taskType}:${t.state}`),
      ["0:a:COMPLETED", "0:b:FAILED", "1:a:COMPLETED", "1:b:COMPLETED"],
    );
  });

  it("a job's last task and its verdict are one store operation; the task's event comes first", async () => {
    const calls: string[] = [];
    const store = rt.store;
    const spied = [
      "finishTask",
      "finishTaskAndJob",
      "finishJobRequest",
      "retryJobRequest",
    ] as const;
    const originals = spied.map((name) => [name, store[name]] as const);
    for (const [name, fn] of originals) {
      (store as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
        calls.push(name);
        return (fn as (...a: unknown[]) => unknown).apply(store, args);
      };
    }
    const events: string[] = [];
    const onTask = (e: { taskType: string; state: string }) =>
      events.push(`${e.taskType}:${e.state}`);
    const onJob = (e: { state: string }) => events.push(`job:${e.state}`);
    rt.engine.events.on("task:state", onTask);
    rt.engine.events.on("job:state", onJob);
    try {
      const ok = await submit(
        "job_type: last-task\ntasks:\n- task_type: a\n  script: [true]\n  on_completed: b\n- task_type: b\n  script: [true]\n",
      );
      const done = await rt.engine.waitFor(ok.id);
      assert.equal(done.state, "COMPLETED");
      assert.deepEqual(calls, ["finishTask", "finishTaskAndJob"], "a alone, then b with the job");
      assert.deepEqual(
        events.filter((e) => /COMPLETED/.test(e)),
        ["a:COMPLETED", "b:COMPLETED", "job:COMPLETED"],
      );
      const view = await rt.engine.getJob(ok.id);
      assert.deepEqual(
        view.tasks.map((t) => t.state),
        ["COMPLETED", "COMPLETED"],
      );
      assert.ok(view.endedAt!.getTime() >= view.tasks[1]!.endedAt!.getTime());

      // A failure that makes a job-level retry is not the job's end: recorded apart.
      calls.length = 0;
      const retried = await submit(
        "job_type: last-task-retry\nretry: 1\ntasks:\n- task_type: a\n  script: [false]\n",
      );
      const failed = await rt.engine.waitFor(retried.id);
      assert.equal(failed.state, "FAILED");
      assert.equal(failed.attempt, 1);
      assert.deepEqual(calls, ["finishTask", "retryJobRequest", "finishTaskAndJob"]);
    } finally {
      for (const [name, fn] of originals) (store as unknown as Record<string, unknown>)[name] = fn;
      rt.engine.events.off("task:state", onTask);
      rt.engine.events.off("job:state", onJob);
    }
  });

  it("max_concurrency keeps the second request PENDING until the first ends", async () => {
    const yaml = `job_type: one-at-a-time
max_concurrency: 1
tasks:
- task_type: a
  script: ["sleep 0.5"]
`;
    const first = await submit(yaml);
    const second = await submit(yaml);
    await waitForTask(rt, first.id, "a", "EXECUTING");
    await sleep(200);
    assert.equal((await rt.store.getJobRequest(second.id))?.state, "PENDING");
    const [a, b] = await Promise.all([rt.engine.waitFor(first.id), rt.engine.waitFor(second.id)]);
    assert.equal(a.state, "COMPLETED");
    assert.equal(b.state, "COMPLETED");
    assert.ok(
      b.startedAt!.getTime() >= a.endedAt!.getTime(),
      "the second started after the first ended",
    );
  });

  it("masks secret variables in output and seals them at rest", async () => {
    const job = await submit(`job_type: secretive
job_variables:
  Token: {value: hunter2-secret, secret: true}
tasks:
- task_type: a
  script: ["echo token={{.Token}}", "echo env=$Token"]
`);
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "COMPLETED");
    const view = await rt.engine.getJob(job.id);
    const out = await readStream(await rt.engine.outputStream(view.tasks[0]!.id));
    assert.equal(out, "token=***\nenv=***\n");
    const raw = await rt.store.getJobRequest(job.id);
    assert.doesNotMatch(
      JSON.stringify(raw?.definition),
      /hunter2-secret/,
      "stored definition is sealed",
    );
    const db = readFileSync(join(dir.path, "colony.db"));
    assert.equal(db.includes("hunter2-secret"), false, "the secret is not in the database file");
  });

  it("passes ::set-output values and params to later tasks, and records them as context", async () => {
    const job = await submit(
      `job_type: outputs
tasks:
- task_type: a
  script: ['echo "::set-output name=Version::1.2.{{.Patch}}"']
  on_completed: b
- task_type: b
  script: ['echo "building {{.Version}}"']
`,
      { Patch: "7" },
    );
    assert.equal((await rt.engine.waitFor(job.id)).state, "COMPLETED");
    const view = await rt.engine.getJob(job.id);
    assert.deepEqual(view.tasks[0]!.context, { Version: "1.2.7" });
    const out = await readStream(await rt.engine.outputStream(view.tasks[1]!.id));
    assert.equal(out, "building 1.2.7\n");
  });

  it("a wide fan-out and join: each task runs once; the join gets the output that ended last", async () => {
    const wide = Array.from({ length: 200 }, (_, i) => `w${i}`);
    const all = ["slow", "fast", ...wide];
    const job = await submit(`job_type: wide
tasks:
- task_type: start
  script: ['echo "::set-output name=Who::start"']
  on_completed: [${all.join(", ")}]
- task_type: slow
  script: ['sleep 0.5', 'echo "::set-output name=Who::slow"']
- task_type: fast
  script: ['echo "::set-output name=Who::fast"']
${wide.map((w) => `- task_type: ${w}\n  script: ['true']\n`).join("")}- task_type: join
  depends_on: [${all.join(", ")}]
  script: ['echo "last: {{.Who}}"']
`);
    assert.equal((await rt.engine.waitFor(job.id)).state, "COMPLETED");
    const view = await rt.engine.getJob(job.id);
    const runs = new Map<string, number>();
    for (const t of view.tasks) runs.set(t.taskType, (runs.get(t.taskType) ?? 0) + 1);
    assert.equal(runs.size, 204, "every task ran");
    assert.deepEqual(
      [...runs].filter(([, n]) => n !== 1),
      [],
      "no task ran twice",
    );
    const join = view.tasks.find((t) => t.taskType === "join")!;
    const out = await readStream(await rt.engine.outputStream(join.id));
    assert.equal(out, "last: slow\n");
  });

  it("renders a task's variables from params, job variables and earlier outputs", async () => {
    const job = await submit(
      `job_type: task-variables
job_variables:
  Region: eu
tasks:
- task_type: a
  script: ['echo "::set-output name=Build::42"']
  on_completed: b
- task_type: b
  variables:
    Target: "{{.Region}}-{{.Name}}-{{.Build}}"
  script: ['echo "template={{.Target}} env=$Target"']
`,
      { Name: "web" },
    );
    assert.equal((await rt.engine.waitFor(job.id)).state, "COMPLETED");
    const view = await rt.engine.getJob(job.id);
    const out = await readStream(await rt.engine.outputStream(view.tasks[1]!.id));
    assert.equal(out, "template=eu-web-42 env=eu-web-42\n");
  });

  it("an unknown template variable fails the task without running it", async () => {
    const job = await submit(`job_type: bad-template
tasks:
- task_type: a
  script: ["echo {{.Nope}}"]
`);
    const final = await rt.engine.waitFor(job.id);
    assert.equal(final.state, "FAILED");
    const view = await rt.engine.getJob(job.id);
    assert.equal(view.tasks[0]!.errorCode, "COLONY_TEMPLATE_UNKNOWN_VARIABLE");
  });

  it("follows a running task's output live until it ends", async () => {
    const job = await submit(`job_type: live
tasks:
- task_type: a
  script: ['for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done']
`);
    const exec = await waitForTask(rt, job.id, "a", "EXECUTING");
    const out = await readStream(await rt.engine.outputStream(exec, { follow: true }));
    assert.equal(out, "line 1\nline 2\nline 3\nline 4\nline 5\n");
  });
});

describe("engine claims (embedded, real processes)", () => {
  it("claims only what its task slots can take soon; the rest stays PENDING for others", async () => {
    const dir = tempDir();
    const rt = await openEmbedded({
      dataDir: dir.path,
      maxParallelTasks: 2,
      killGraceMs: 500,
      engine: { pollMs: 50 },
    });
    try {
      await rt.engine.start();
      const go = join(dir.path, "go");
      const definition = parseJobDefinition(`job_type: wait-for-go
tasks:
- task_type: a
  script: ["while [ ! -e '${go}' ]; do sleep 0.05; done"]
`);
      const ids: number[] = [];
      for (let i = 0; i < 8; i++) ids.push((await rt.engine.submit({ definition })).id);
      // Both slots busy (on a loaded machine either task may be the later one to start).
      await waitForTask(rt, ids[0]!, "a", "EXECUTING");
      await waitForTask(rt, ids[1]!, "a", "EXECUTING");
      await sleep(300); // several polls: nothing more may be claimed meanwhile
      const states = await Promise.all(
        ids.map(async (id) => (await rt.store.getJobRequest(id))!.state),
      );
      // Two tasks run (one per slot), two more jobs are claimed ahead of free slots.
      assert.deepEqual(
        states.map((s) => (s === "PENDING" ? "PENDING" : "claimed")),
        ["claimed", "claimed", "claimed", "claimed", "PENDING", "PENDING", "PENDING", "PENDING"],
      );
      const running = (await rt.store.listRecentTaskExecutions({ limit: 100 })).items.filter(
        (t) => t.state === "EXECUTING",
      );
      assert.equal(running.length, 2, "no more tasks than slots run at once");
      writeFileSync(go, "");
      const finals = await Promise.all(ids.map((id) => rt.engine.waitFor(id)));
      assert.deepEqual(
        finals.map((j) => j.state),
        ids.map(() => "COMPLETED"),
      );
    } finally {
      await rt.close({ cancelRunning: true });
      dir.remove();
    }
  });
});

async function waitForTask(
  rt: Embedded,
  jobId: number,
  taskType: string,
  state: string,
): Promise<string> {
  const until = Date.now() + 10_000;
  for (;;) {
    const view = await rt.engine.getJob(jobId);
    const t = view.tasks.find((x) => x.taskType === taskType && x.state === state);
    if (t) return t.id;
    if (Date.now() > until)
      throw new Error(`task ${taskType} of job ${jobId} never reached ${state}`);
    await sleep(20);
  }
}
