/**
 * Crash safety of `colony run`: kill -9 the process mid-job, then `colony run --resume`
 * on the same data dir finishes the job: completed tasks are not re-run, output already
 * written is kept, and no task stays EXECUTING forever.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runCli, startCli, tempDir } from "./support/cli.ts";

/** A task of `colony run --json`: the API's task execution view. */
interface TaskRecord {
  id: string;
  task_type: string;
  state: string;
  attempt: number;
  error_code: string | null;
}

async function waitFor(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function job(dir: string, retry: number): string {
  const file = join(dir, "crash.yaml");
  writeFileSync(
    file,
    `job_type: crash-demo
tasks:
- task_type: first
  script: [echo first-done]
  on_completed: slow
- task_type: slow
  retry: ${retry}
  script:
    - echo "slow-start $COLONY_TASK_ATTEMPT"
    - echo $$ > ${dir}/slow.pid
    - sleep 2
    - echo slow-end
  on_completed: last
- task_type: last
  script: [echo last-done]
`,
  );
  return file;
}

describe("colony run survives kill -9 (crash test)", () => {
  const dirs: Array<{ remove(): void }> = [];
  after(() => dirs.forEach((d) => d.remove()));

  it("re-attaches to a task still running and does not re-run completed tasks", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = startCli(["run", job(dir.path, 0), "--data-dir", dir.path]);
    await waitFor("the slow task to start", () => /\[slow\] slow-start/.test(first.stdout()));
    first.child.kill("SIGKILL");
    await first.result;

    const resumed = await runCli(["run", "--resume", "--json", "--data-dir", dir.path]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const record = JSON.parse(resumed.stdout) as { state: string; tasks: TaskRecord[] };
    assert.equal(record.state, "COMPLETED");
    const byType = (t: string) => record.tasks.filter((x) => x.task_type === t);
    assert.equal(byType("first").length, 1, "first must not run again");
    assert.equal(byType("slow").length, 1, "slow was re-attached, not restarted");
    assert.equal(byType("last")[0]?.state, "COMPLETED");
    const slowOut = readFileSync(join(dir.path, "units", byType("slow")[0]!.id, "stdout"), "utf8");
    assert.equal(slowOut, "slow-start 0\nslow-end\n", "no output lost across the crash");
    const firstOut = readFileSync(
      join(dir.path, "units", byType("first")[0]!.id, "stdout"),
      "utf8",
    );
    assert.equal(firstOut, "first-done\n");
  });

  it("a task whose process died with colony fails with a reason and is retried per policy", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = startCli(["run", job(dir.path, 1), "--data-dir", dir.path]);
    await waitFor("the slow task to start", () => /\[slow\] slow-start/.test(first.stdout()));
    await waitFor("the pid file", () => {
      try {
        return readFileSync(join(dir.path, "slow.pid"), "utf8").trim().length > 0;
      } catch {
        return false;
      }
    });
    const pid = Number(readFileSync(join(dir.path, "slow.pid"), "utf8"));
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    // Everything dies at once: colony, the spawner that watches the task, and the task.
    first.child.kill("SIGKILL");
    if (ppid > 1 && ppid !== process.pid) process.kill(ppid, "SIGKILL");
    process.kill(-pid, "SIGKILL");
    await first.result;

    const resumed = await runCli(["run", "--resume", "--json", "--data-dir", dir.path]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const record = JSON.parse(resumed.stdout) as { state: string; tasks: TaskRecord[] };
    const slow = record.tasks.filter((t) => t.task_type === "slow");
    assert.equal(slow.length, 2, "one lost attempt, one retry");
    assert.equal(slow[0]!.state, "FAILED");
    assert.match(
      slow[0]!.error_code ?? "",
      /COLONY_TASK_LOST|COLONY_TASK_EXIT_CODE|COLONY_TASK_ERROR/,
    );
    assert.equal(slow[1]!.state, "COMPLETED");
    assert.ok(
      record.tasks.every((t) => ["COMPLETED", "FAILED"].includes(t.state)),
      "nothing left EXECUTING",
    );
  });

  it("--resume with nothing to resume says so and exits 0", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const r = await runCli(["run", "--resume", "--data-dir", dir.path]);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /nothing to resume/);
  });
});
