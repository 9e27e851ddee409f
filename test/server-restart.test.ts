/**
 * Restarts lose nothing: `colony server` runs as a real child process; a job is
 * submitted over HTTP; the server is killed with SIGKILL mid-task and started again on
 * the same data dir: the job completes, finished tasks are not run again, no output is
 * lost. A graceful stop (SIGTERM) lets a short running task finish before the process
 * exits; a task longer than the grace keeps running and the next start re-attaches.
 * Killed with SIGKILL while clients submit jobs as fast as it answers, on SQLite and on
 * PostgreSQL: every job it answered 201 is there after the restart and completes.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { startCli, tempDir, type CliResult } from "./support/cli.ts";
import { http, waitUntil } from "./support/server-harness.ts";
import type { ChildProcess } from "node:child_process";
import { createSqliteStore } from "../src/store/sqlite-store.ts";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { postgres } from "./support/services.ts";

const pgService = await postgres();

interface TaskJson {
  id: string;
  task_type: string;
  state: string;
  attempt: number;
  error_code: string | null;
}
interface JobJson {
  id: number;
  state: string;
  tasks?: TaskJson[];
}

interface ServerProcess {
  child: ChildProcess;
  result: Promise<CliResult>;
  stdout: () => string;
  url: string;
  token: string;
}

const children: ChildProcess[] = [];

/** Starts `colony server` on `dataDir` and waits until its server.json names it. */
async function startColonyServer(dataDir: string, extra: string[] = []): Promise<ServerProcess> {
  const run = startCli(["server", "--data-dir", dataDir, "--port", "0", ...extra]);
  children.push(run.child);
  const info = join(dataDir, "server.json");
  let url = "";
  // server.json is written just before the command prints its first line: wait for both.
  await waitUntil("server.json of the new server", async () => {
    if (run.child.exitCode !== null) {
      const r = await run.result;
      throw new Error(`colony server exited ${r.code}: ${r.stderr}`);
    }
    if (!existsSync(info)) return false;
    try {
      const parsed = JSON.parse(readFileSync(info, "utf8")) as { pid: number; url: string };
      if (parsed.pid !== run.child.pid) return false;
      url = parsed.url;
      return /admin token: /.test(run.stdout());
    } catch {
      return false;
    }
  });
  assert.match(run.stdout(), new RegExp(`colony server listening on ${url}`));
  assert.match(run.stdout(), /admin token: .*admin\.token/);
  // The CLI runs elsewhere (the repository): the line says how it finds the token.
  assert.ok(
    run
      .stdout()
      .includes(`colony commands on this machine use it when given --data-dir ${dataDir}`),
    run.stdout(),
  );
  const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  return { ...run, url, token };
}

async function submit(server: ServerProcess, yaml: string): Promise<JobJson> {
  const res = await http(`${server.url}/api/job-requests`, {
    headers: { authorization: server.token },
    json: { definition: yaml },
  });
  assert.equal(res.status, 201, res.text);
  return res.json<JobJson>();
}

async function getJob(server: ServerProcess, id: number): Promise<JobJson> {
  const res = await http(`${server.url}/api/job-requests/${id}`, {
    headers: { authorization: server.token },
  });
  assert.equal(res.status, 200, res.text);
  return res.json<JobJson>();
}

async function waitForState(server: ServerProcess, id: number, state: string): Promise<JobJson> {
  let job: JobJson | undefined;
  try {
    await waitUntil(`job ${id} to be ${state}`, async () => {
      job = await getJob(server, id);
      return job.state === state;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; it is ${JSON.stringify(job)}`, { cause: error });
  }
  return job!;
}

/** The task executions of a job as the store has them (read with no server running). */
async function tasksInStore(dataDir: string, id: number) {
  const store = createSqliteStore({ path: join(dataDir, "colony.db") });
  try {
    return await store.listTaskExecutions(id);
  } finally {
    await store.close();
  }
}

function output(dataDir: string, unitId: string): string {
  return readFileSync(join(dataDir, "units", unitId, "stdout"), "utf8");
}

function jobYaml(dir: string, slowScript: string[]): string {
  return `job_type: restart-demo
tasks:
- task_type: first
  script: [echo first-done]
  on_completed: slow
- task_type: slow
  script:
${slowScript.map((line) => `    - ${JSON.stringify(line)}`).join("\n")}
  on_completed: last
- task_type: last
  script: [echo last-done, "echo $$ >> ${dir}/last.runs"]
`;
}

describe("colony server restarts lose nothing", () => {
  const dirs: Array<{ remove(): void }> = [];
  after(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    dirs.forEach((d) => d.remove());
  });

  it("kill -9 mid-task: the next start finishes the job without redoing or losing anything", async () => {
    const dir = tempDir("colony-restart-");
    dirs.push(dir);
    const dataDir = join(dir.path, "data");
    const first = await startColonyServer(dataDir);
    const job = await submit(
      first,
      jobYaml(dir.path, [
        "echo slow-start",
        `touch ${dir.path}/slow.started`,
        "sleep 2",
        "echo slow-end",
      ]),
    );
    await waitUntil("the slow task to start", () => existsSync(join(dir.path, "slow.started")));
    first.child.kill("SIGKILL");
    await first.result;

    const second = await startColonyServer(dataDir);
    const done = await waitForState(second, job.id, "COMPLETED");
    const byType = (t: string) => done.tasks!.filter((x) => x.task_type === t);
    assert.equal(byType("first").length, 1, "first is not run again");
    assert.equal(byType("slow").length, 1, "slow was re-attached, not started again");
    assert.equal(byType("slow")[0]!.state, "COMPLETED");
    assert.equal(byType("last").length, 1);
    assert.equal(output(dataDir, byType("first")[0]!.id), "first-done\n");
    assert.equal(
      output(dataDir, byType("slow")[0]!.id),
      "slow-start\nslow-end\n",
      "no output lost",
    );
    assert.equal(output(dataDir, byType("last")[0]!.id), "last-done\n");
    assert.equal(readFileSync(join(dir.path, "last.runs"), "utf8").trim().split("\n").length, 1);

    second.child.kill("SIGTERM");
    const exit = await second.result;
    assert.equal(exit.code, 0, exit.stderr);
    assert.equal(existsSync(join(dataDir, "server.json")), false, "server.json removed on stop");
  });

  it("a task that ends while the server is down is recorded with its own result", async () => {
    const dir = tempDir("colony-down-");
    dirs.push(dir);
    const dataDir = join(dir.path, "data");
    const first = await startColonyServer(dataDir);
    const job = await submit(
      first,
      jobYaml(dir.path, [
        `touch ${dir.path}/slow.started`,
        "sleep 1",
        "echo ::set-output name=Answer::42",
        `touch ${dir.path}/slow.ended`,
      ]),
    );
    await waitUntil("the slow task to start", () => existsSync(join(dir.path, "slow.started")));
    first.child.kill("SIGKILL");
    await first.result;
    await waitUntil("the slow task to end", () => existsSync(join(dir.path, "slow.ended")));
    await new Promise((r) => setTimeout(r, 200)); // its exit status is written just after

    const second = await startColonyServer(dataDir);
    const done = await waitForState(second, job.id, "COMPLETED");
    const slow = done.tasks!.filter((t) => t.task_type === "slow");
    assert.equal(slow.length, 1, "not run again");
    assert.equal(slow[0]!.state, "COMPLETED");
    assert.equal(output(dataDir, slow[0]!.id), "::set-output name=Answer::42\n");
    const stored = await http(`${second.url}/api/job-requests/${job.id}`, {
      headers: { authorization: second.token },
    });
    assert.match(stored.text, /"Answer":"42"/, "outputs of the recorded run are kept");
    second.child.kill("SIGTERM");
    assert.equal((await second.result).code, 0);
  });

  it("a SIGTERM sent the moment the server says it is listening stops it cleanly", async () => {
    // The handler is installed before that line: a supervisor that signals on seeing it
    // must get a clean stop, not a process killed by the signal (exit code null).
    for (let i = 0; i < 5; i++) {
      const dir = tempDir("colony-early-term-");
      dirs.push(dir);
      const run = startCli(["server", "--data-dir", join(dir.path, "data"), "--port", "0"]);
      children.push(run.child);
      run.child.stdout!.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("listening on")) run.child.kill("SIGTERM");
      });
      const exit = await run.result;
      assert.equal(exit.code, 0, exit.stderr);
      assert.match(exit.stderr, /SIGTERM: stopping/);
    }
  });

  it("SIGTERM lets a short running task finish, then exits 0", async () => {
    const dir = tempDir("colony-sigterm-");
    dirs.push(dir);
    const dataDir = join(dir.path, "data");
    const server = await startColonyServer(dataDir);
    const job = await submit(
      server,
      jobYaml(dir.path, [`touch ${dir.path}/slow.started`, "sleep 1", "echo slow-end"]),
    );
    await waitUntil("the slow task to start", () => existsSync(join(dir.path, "slow.started")));
    const stopAt = Date.now();
    server.child.kill("SIGTERM");
    const exit = await server.result;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /SIGTERM: stopping/);
    assert.ok(Date.now() - stopAt < 9000, "did not wait for the whole grace period");
    const stored = await tasksInStore(dataDir, job.id);
    assert.equal(
      stored.find((t) => t.taskType === "slow")?.state,
      "COMPLETED",
      "finished before exit",
    );

    // The slow task finished during the grace; the rest of the job runs at the next start.
    const again = await startColonyServer(dataDir);
    const done = await waitForState(again, job.id, "COMPLETED");
    const slow = done.tasks!.filter((t) => t.task_type === "slow");
    assert.equal(slow.length, 1);
    assert.equal(output(dataDir, slow[0]!.id), "slow-end\n");
    again.child.kill("SIGTERM");
    assert.equal((await again.result).code, 0);
  });

  it("a task longer than the grace keeps running and is re-attached at the next start", async () => {
    const dir = tempDir("colony-grace-");
    dirs.push(dir);
    const dataDir = join(dir.path, "data");
    const config = join(dir.path, "colony.yaml");
    writeFileSync(config, "shutdown_grace: 300ms\n");
    const server = await startColonyServer(dataDir, ["--config", config]);
    const job = await submit(
      server,
      jobYaml(dir.path, [
        "echo slow-start",
        `touch ${dir.path}/slow.started`,
        "sleep 3",
        "echo slow-end",
      ]),
    );
    await waitUntil("the slow task to start", () => existsSync(join(dir.path, "slow.started")));
    server.child.kill("SIGTERM");
    const exit = await server.result;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /left to the next start/);
    const stored = await tasksInStore(dataDir, job.id);
    assert.equal(stored.find((t) => t.taskType === "slow")?.state, "EXECUTING", "left running");

    const again = await startColonyServer(dataDir, ["--config", config]);
    const done = await waitForState(again, job.id, "COMPLETED");
    const slow = done.tasks!.filter((t) => t.task_type === "slow");
    assert.equal(slow.length, 1, "re-attached, not run twice");
    assert.equal(output(dataDir, slow[0]!.id), "slow-start\nslow-end\n");
    again.child.kill("SIGTERM");
    assert.equal((await again.result).code, 0);
  });
});

/** Every job request the server has, by id (all pages of GET /api/job-requests). */
async function allJobIds(server: ServerProcess): Promise<number[]> {
  const ids: number[] = [];
  let cursor: string | undefined;
  do {
    const res = await http(
      `${server.url}/api/job-requests?limit=500${cursor ? `&cursor=${cursor}` : ""}`,
      { headers: { authorization: server.token } },
    );
    assert.equal(res.status, 200, res.text);
    const page = res.json<{ items: JobJson[]; next_cursor?: string | null }>();
    ids.push(...page.items.map((j) => j.id));
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
  return ids;
}

/** Lanes of clients each submitting one job after another until the server stops answering. */
const STORM_LANES = 8;
/** The server is killed once this many submissions were answered. */
const STORM_ACKED = 80;

describe("kill -9 in a storm of submissions", () => {
  const dirs: Array<{ remove(): void }> = [];
  const schemas: string[] = [];
  after(async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    dirs.forEach((d) => d.remove());
    if (schemas.length > 0 && pgService.url) {
      const client = new pg.Client({ connectionString: pgService.url });
      await client.connect();
      for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    }
  });

  const stores = [
    { name: "SQLite", skip: false as const, args: () => [] as string[] },
    {
      name: "PostgreSQL",
      skip: pgService.url ? (false as const) : pgService.reason,
      args: () => {
        const schema = `colony_storm_${randomBytes(4).toString("hex")}`;
        schemas.push(schema);
        return ["--store", `${pgService.url}?schema=${schema}`];
      },
    },
  ];
  for (const store of stores) {
    it(
      `every job answered 201 is there after the restart and completes (${store.name})`,
      { skip: store.skip },
      async () => {
        const dir = tempDir("colony-storm-");
        dirs.push(dir);
        const runs = join(dir.path, "runs");
        const dataDir = join(dir.path, "data");
        const args = store.args();
        const first = await startColonyServer(dataDir, args);
        const body = JSON.stringify({
          definition: `job_type: storm\ntasks:\n- task_type: t\n  script: ["echo $COLONY_JOB_REQUEST_ID >> ${runs}", "sleep 0.2"]\n`,
        });
        const acked = new Set<number>();
        /** Requests that got no answer: they were in flight when the server died. */
        let unanswered = 0;
        let killed = false;
        const lane = async () => {
          while (!killed) {
            let res: Response;
            try {
              res = await fetch(`${first.url}/api/job-requests`, {
                method: "POST",
                headers: {
                  authorization: `Bearer ${first.token}`,
                  "content-type": "application/json",
                },
                body,
              });
            } catch {
              unanswered++;
              return;
            }
            if (res.status !== 201)
              throw new Error(`submit answered ${res.status}: ${await res.text()}`);
            const job = (await res.json().catch(() => undefined)) as JobJson | undefined;
            if (job) acked.add(job.id);
          }
        };
        const lanes = Array.from({ length: STORM_LANES }, lane);
        await waitUntil(`${STORM_ACKED} submissions answered`, () => acked.size >= STORM_ACKED);
        first.child.kill("SIGKILL");
        killed = true;
        await Promise.all(lanes);
        await first.result;
        assert.ok(unanswered > 0, "the server died with submissions in flight");
        const answered = [...acked];

        const second = await startColonyServer(dataDir, args);
        const stored = new Set(await allJobIds(second));
        const lost = answered.filter((id) => !stored.has(id));
        assert.deepEqual(lost, [], "no job answered 201 is missing after the restart");
        // A request in flight may have been committed and not answered; never more than one
        // job per request.
        assert.ok(
          stored.size <= answered.length + STORM_LANES,
          `${stored.size} jobs stored for ${answered.length} answered and ${STORM_LANES} in flight`,
        );
        for (const id of stored) {
          const job = await waitForState(second, id, "COMPLETED");
          assert.equal(job.tasks?.length, 1, `job ${id} has one task execution`);
        }
        // Each task's process ran once: those running at the kill, and those started and
        // not yet recorded, were followed, not started again.
        const ran = readFileSync(runs, "utf8").trim().split("\n").map(Number);
        assert.deepEqual(
          ran.toSorted((x, y) => x - y),
          [...stored].toSorted((x, y) => x - y),
          "every stored job's task ran exactly once",
        );
        second.child.kill("SIGTERM");
        assert.equal((await second.result).code, 0);
      },
    );
  }
});
