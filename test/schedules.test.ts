/**
 * Schedules (SPEC section 2 cron_trigger, seed 004 cron) and scheduled_at:
 * - with a controllable clock on a real SQLite file: on time, never twice, one catch-up
 *   run after downtime (also across a new scheduler on the reopened store, as after a
 *   restart), time zones, pause and resume, definition changes, two schedulers racing;
 * - on a real server: a seconds-field schedule fires on time, /api/schedules and
 *   `colony schedules` list, pause and resume it, and after a restart the schedule goes
 *   on without ever firing one cron time twice;
 * - scheduled_at: a request waits for its time, also across a restart, and runs once.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient, type ColonyClient } from "../src/client/client.ts";
import { loadConfig } from "../src/config/config.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { CronScheduler } from "../src/engine/cron-scheduler.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { createSqliteStore } from "../src/store/sqlite-store.ts";
import type { Store } from "../src/store/store.ts";
import { runCli, tempDir } from "./support/cli.ts";

const T0 = Date.UTC(2030, 0, 1, 0, 0, 3);

function definition(jobType: string, cron: string) {
  return parseJobDefinition(
    `job_type: ${jobType}\ncron_trigger: "${cron}"\ntasks:\n- task_type: t\n  script: [echo tick]\n`,
  );
}

describe("cron scheduler with a controllable clock", () => {
  const dir = tempDir("colony-cron-");
  let store: Store;
  let now = T0;
  const clock = () => new Date(now);
  const at = (iso: string) => (now = Date.parse(iso));
  const openStore = async () => {
    const s = createSqliteStore({ path: join(dir.path, "colony.db") });
    await s.migrate();
    return s;
  };
  const fired = async (jobType: string) =>
    (await store.listJobRequests({ jobType, limit: 500 })).items
      .map((j) => j.scheduledAt.toISOString())
      .sort();

  before(async () => {
    store = await openStore();
  });
  after(async () => {
    await store.close();
    dir.remove();
  });

  it("fires on time, once per cron time, and once after downtime", async () => {
    await store.putDefinition(definition("every10s", "*/10 * * * * *"), "src");
    const scheduler = new CronScheduler({ store, now: clock });
    await scheduler.sync();
    assert.deepEqual(await scheduler.tick(), [], "a new schedule does not fire for the past");
    at("2030-01-01T00:00:09.999Z");
    assert.deepEqual(await scheduler.tick(), []);
    at("2030-01-01T00:00:10.000Z");
    const first = await scheduler.tick();
    assert.equal(first.length, 1);
    assert.equal(first[0]!.submittedBy, "schedule");
    assert.equal(first[0]!.state, "PENDING");
    assert.deepEqual(await scheduler.tick(), [], "the same time never fires twice");
    at("2030-01-01T00:00:15Z");
    assert.deepEqual(await scheduler.tick(), []);
    // Downtime: 00:00:20 ... 00:01:00 were missed; one run, for the latest of them.
    at("2030-01-01T00:01:07Z");
    const catchUp = await scheduler.tick();
    assert.equal(catchUp.length, 1);
    assert.equal(catchUp[0]!.scheduledAt.toISOString(), "2030-01-01T00:01:00.000Z");
    at("2030-01-01T00:01:10Z");
    assert.equal((await scheduler.tick()).length, 1, "then on schedule again");
    assert.deepEqual(await fired("every10s"), [
      "2030-01-01T00:00:10.000Z",
      "2030-01-01T00:01:00.000Z",
      "2030-01-01T00:01:10.000Z",
    ]);
  });

  it("a new scheduler on the reopened store (a restart) neither repeats nor loses a firing", async () => {
    await store.close();
    store = await openStore();
    const restarted = new CronScheduler({ store, now: clock });
    await restarted.sync();
    assert.deepEqual(await restarted.tick(), [], "00:01:10 fired before the restart");
    at("2030-01-01T00:05:01Z");
    const catchUp = await restarted.tick();
    assert.deepEqual(
      catchUp.map((j) => j.scheduledAt.toISOString()),
      ["2030-01-01T00:05:00.000Z"],
    );
    assert.equal((await fired("every10s")).length, 4);
  });

  it("two schedulers ticking at once fire a time exactly once", async () => {
    const a = new CronScheduler({ store, now: clock });
    const b = new CronScheduler({ store, now: clock });
    await Promise.all([a.sync(), b.sync()]);
    at("2030-01-01T00:05:30Z");
    const [x, y] = await Promise.all([a.tick(), b.tick()]);
    assert.equal(x.length + y.length, 1);
    assert.equal((await fired("every10s")).length, 5);
  });

  it("evaluates cron in the schedule's time zone (CRON_TZ= or the default)", async () => {
    at("2030-01-01T00:05:30Z");
    await store.putDefinition(definition("paris9", "CRON_TZ=Europe/Paris 0 9 * * *"), "src");
    await store.putDefinition(definition("ny9", "0 0 9 * * *"), "src");
    const scheduler = new CronScheduler({ store, now: clock, defaultTimezone: "America/New_York" });
    const byType = new Map((await scheduler.list()).map((s) => [s.jobType, s]));
    assert.equal(byType.get("paris9")?.nextFireAt?.toISOString(), "2030-01-01T08:00:00.000Z");
    assert.equal(byType.get("paris9")?.effectiveTimezone, "Europe/Paris");
    assert.equal(byType.get("ny9")?.nextFireAt?.toISOString(), "2030-01-01T14:00:00.000Z");
    assert.equal(byType.get("ny9")?.effectiveTimezone, "America/New_York");
    at("2030-01-01T08:00:00Z");
    const types = (await scheduler.tick()).map((j) => j.jobType);
    assert.ok(types.includes("paris9") && !types.includes("ny9"), types.join(","));
  });

  it("pause stops firing; resume continues from now without the missed times", async () => {
    await store.putDefinition(definition("minutely", "* * * * *"), "src");
    const scheduler = new CronScheduler({ store, now: clock });
    await scheduler.sync();
    const paused = await scheduler.setPaused("minutely", true);
    assert.equal(paused.paused, true);
    assert.equal(paused.nextFireAt, undefined);
    at("2030-01-01T08:10:00Z");
    assert.ok(!(await scheduler.tick()).some((j) => j.jobType === "minutely"));
    at("2030-01-01T08:10:30Z");
    const resumed = await scheduler.setPaused("minutely", false);
    assert.equal(resumed.nextFireAt?.toISOString(), "2030-01-01T08:11:00.000Z");
    assert.ok(!(await scheduler.tick()).some((j) => j.jobType === "minutely"));
    at("2030-01-01T08:11:00Z");
    assert.ok((await scheduler.tick()).some((j) => j.jobType === "minutely"));
    await assert.rejects(scheduler.setPaused("nope", true), /no schedule 'nope'/);
  });

  it("follows definition changes: a new cron keeps the last firing; no cron, no schedule", async () => {
    const scheduler = new CronScheduler({ store, now: clock });
    await scheduler.sync();
    const before = await store.asyncActions.getSchedule("minutely");
    await store.putDefinition(definition("minutely", "*/2 * * * *"), "src");
    await scheduler.sync();
    const changed = await store.asyncActions.getSchedule("minutely");
    assert.equal(changed?.cron, "*/2 * * * *");
    assert.deepEqual(changed?.lastFiredAt, before?.lastFiredAt);
    await store.putDefinition(
      parseJobDefinition("job_type: minutely\ntasks:\n- task_type: t\n  script: [true]\n"),
      "src",
    );
    await scheduler.sync();
    assert.equal(await store.asyncActions.getSchedule("minutely"), undefined);
    await store.deleteDefinition("paris9");
    await scheduler.sync();
    assert.equal(await store.asyncActions.getSchedule("paris9"), undefined);
  });
});

describe("schedules and scheduled_at on a real server", () => {
  const dir = tempDir("colony-schedules-server-");
  let server: RunningServer;
  let client: ColonyClient;
  let token: string;
  const config = () => loadConfig({ overrides: { dataDir: dir.path, host: "127.0.0.1", port: 0 } });
  const start = async () => {
    server = await startServer(config(), { log: () => undefined });
    token = (await import("node:fs")).readFileSync(server.adminTokenFile!, "utf8").trim();
    client?.close();
    client = createClient({ server: server.url, token });
  };
  const runsOf = async (jobType: string) =>
    (await client.listJobRequests({ jobType, limit: 500 })).items;

  before(start);
  after(async () => {
    client?.close();
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  it("a seconds-field cron_trigger fires on time; API and CLI list, pause and resume it", async () => {
    await client.saveDefinition(
      "job_type: heartbeat\ncron_trigger: '* * * * * *'\ntasks:\n- task_type: beat\n  script: [echo beat]\n",
    );
    const deadline = Date.now() + 8000;
    let runs = await runsOf("heartbeat");
    while (runs.filter((r) => r.state === "COMPLETED").length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      runs = await runsOf("heartbeat");
    }
    const done = runs.filter((r) => r.state === "COMPLETED");
    assert.ok(done.length >= 2, `two runs within 8 s, got ${runs.length}`);
    for (const r of done) {
      const lag = Date.parse(r.started_at!) - Date.parse(r.scheduled_at);
      assert.ok(lag >= 0 && lag < 1000, `started ${lag} ms after its cron time`);
      assert.equal(r.submitted_by, "schedule");
    }
    const [listed] = await client.listSchedules();
    assert.equal(listed?.job_type, "heartbeat");
    assert.equal(listed?.cron_trigger, "* * * * * *");
    assert.equal(listed?.paused, false);
    assert.ok(listed?.next_fire_at && Date.parse(listed.next_fire_at) > Date.now() - 1000);

    const flags = ["--server", server.url, "--token", token];
    const paused = await runCli(["schedules", "pause", "heartbeat", ...flags]);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /heartbeat\s+\* \* \* \* \* \*\s+local\s+paused/);
    const count = (await runsOf("heartbeat")).length;
    await new Promise((r) => setTimeout(r, 1600));
    assert.equal((await runsOf("heartbeat")).length, count, "nothing fires while paused");
    const listedCli = await runCli(["schedules", "list", ...flags]);
    assert.match(listedCli.stdout, /heartbeat .*paused/);
    const resumed = await runCli(["schedules", "resume", "heartbeat", "--json", ...flags]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal((JSON.parse(resumed.stdout) as { paused: boolean }).paused, false);
    const notFound = await runCli(["schedules", "pause", "nope", ...flags]);
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /no schedule 'nope'/);
    // colony submit of a file with a cron_trigger runs it now and says it is scheduled too.
    const nightly = join(dir.path, "nightly.yaml");
    (await import("node:fs")).writeFileSync(
      nightly,
      "job_type: nightly\ncron_trigger: '0 3 * * *'\ntasks:\n- task_type: t\n  script: [echo n]\n",
    );
    const submitted = await runCli(["submit", nightly, ...flags]);
    assert.equal(submitted.code, 0, submitted.stderr);
    assert.match(submitted.stderr, /nightly also runs on its cron_trigger '0 3 \* \* \*'/);
    assert.ok((await client.listSchedules()).some((s) => s.job_type === "nightly"));
  });

  it("scheduled_at waits for its time and runs once, across a restart too", async () => {
    const yaml = "job_type: later\ntasks:\n- task_type: t\n  script: [echo later]\n";
    const at = new Date(Date.now() + 1500);
    const early = await client.submitDefinition(yaml, { scheduledAt: at });
    const across = await client.submitDefinition(yaml, {
      scheduledAt: new Date(Date.now() + 2500),
    });
    assert.equal(early.scheduled_at, at.toISOString());
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await client.getJobRequest(early.id)).state, "PENDING", "not before its time");
    await server.runtime.engine.waitFor(early.id);
    const ran = await client.getJobRequest(early.id);
    assert.equal(ran.state, "COMPLETED");
    assert.ok(Date.parse(ran.started_at!) >= at.getTime());
    assert.equal(ran.tasks?.length, 1);

    // Restart before `across` is due: the next server runs it, once.
    const beats = (await runsOf("heartbeat")).map((r) => r.scheduled_at);
    await server.close({ graceMs: 5000 });
    await new Promise((r) => setTimeout(r, 2500));
    await start();
    await server.runtime.engine.waitFor(across.id);
    const after = await client.getJobRequest(across.id);
    assert.equal(after.state, "COMPLETED");
    assert.equal(after.tasks?.length, 1, "ran once");

    // The schedule went on after the restart: one catch-up for the downtime, then on time,
    // and no cron time ever fired twice.
    await new Promise((r) => setTimeout(r, 1500));
    const all = (await runsOf("heartbeat")).map((r) => r.scheduled_at);
    assert.equal(new Set(all).size, all.length, "no cron time fired twice");
    const newer = all.filter((t) => !beats.includes(t)).sort();
    assert.ok(newer.length >= 2, `fired after the restart: ${newer.join(", ")}`);
    const gaps = newer.slice(1).map((t, i) => Date.parse(t) - Date.parse(newer[i]!));
    assert.ok(
      gaps.every((g) => g === 1000 || g > 2000),
      `one catch-up then every second: ${gaps.join(",")}`,
    );
  });
});
