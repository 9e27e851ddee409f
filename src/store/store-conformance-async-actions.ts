/**
 * Conformance: the async-action part of the store (hook reports, artifacts, schedules),
 * run against every backend by store-conformance.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConflictError, NotFoundError } from "../core/errors.ts";
import type { NewArtifact } from "./async-action-store.ts";
import { executionIn, jobDef, requestIn, type CurrentStore } from "./store-conformance-fixtures.ts";

function artifactInput(extra: Partial<NewArtifact> = {}): NewArtifact {
  return {
    store: "artifacts",
    ownerId: "unit0001",
    property: "report",
    name: "report.txt",
    mimetype: "text/plain",
    size: 5,
    md5: "5d41402abc4b2a76b9719d911017c592",
    challenge: "0b5f27eb6e7e46c22d1ebf9e5e9e1a3e",
    sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    metadata: { origin: "test", nested: { ünï: [1, 2] } },
    ...extra,
  };
}

export function asyncActionConformance(store: CurrentStore): void {
  void describe("hook reports", () => {
    void it("records reports on an unfinished execution, keeping fields not sent", async () => {
      const job = await requestIn(store(), "EXECUTING");
      const exec = await executionIn(store(), job.id, "EXECUTING");
      assert.equal(exec.hook, undefined);
      const at = new Date(Date.UTC(2030, 0, 1, 12));
      const first = await store().asyncActions.recordHookReport(
        exec.id,
        { status: "RUNNING", statusDetails: { progress: 10, note: "héllo" } },
        at,
      );
      assert.deepEqual(first.hook, {
        status: "RUNNING",
        statusDetails: { progress: 10, note: "héllo" },
        updatedAt: at,
      });
      const later = new Date(at.getTime() + 1000);
      const second = await store().asyncActions.recordHookReport(
        exec.id,
        { status: "ERROR", errorMessage: "disk full" },
        later,
      );
      assert.deepEqual(second.hook, {
        status: "ERROR",
        statusDetails: { progress: 10, note: "héllo" },
        errorMessage: "disk full",
        updatedAt: later,
      });
      assert.deepEqual((await store().getTaskExecution(exec.id))?.hook, second.hook);
      assert.deepEqual((await store().listTaskExecutions(job.id))[0]?.hook, second.hook);
    });

    void it("refuses reports on unknown and finished executions", async () => {
      const job = await requestIn(store(), "EXECUTING");
      const done = await executionIn(store(), job.id, "COMPLETED");
      await assert.rejects(
        store().asyncActions.recordHookReport("nosuch01", { status: "RUNNING" }, new Date()),
        NotFoundError,
      );
      await assert.rejects(
        store().asyncActions.recordHookReport(done.id, { status: "RUNNING" }, new Date()),
        ConflictError,
      );
      assert.equal((await store().getTaskExecution(done.id))?.hook, undefined);
    });
  });

  void describe("artifacts", () => {
    void it("numbers files per (store, owner, property) from 0 and finds them back", async () => {
      const job = await requestIn(store(), "EXECUTING");
      const a = store().asyncActions;
      const expiresAt = new Date(Date.UTC(2031, 5, 1));
      const first = await a.addArtifact(
        artifactInput({
          jobRequestId: job.id,
          taskExecutionId: "unit0001",
          taskType: "build",
          expiresAt,
        }),
      );
      assert.equal(first.created, true);
      assert.match(first.artifact.id, /^art_[a-z0-9]{12}$/);
      assert.equal(first.artifact.index, 0);
      assert.equal(first.artifact.jobRequestId, job.id);
      assert.deepEqual(first.artifact.expiresAt, expiresAt);
      assert.deepEqual(first.artifact.metadata, { origin: "test", nested: { ünï: [1, 2] } });
      const second = await a.addArtifact(
        artifactInput({ sha256: "b".repeat(64), md5: "c".repeat(32) }),
      );
      assert.equal(second.artifact.index, 1);
      const other = await a.addArtifact(artifactInput({ property: "logs" }));
      assert.equal(other.artifact.index, 0);
      assert.deepEqual(await a.getArtifact(first.artifact.id), first.artifact);
      assert.deepEqual(
        await a.getArtifactAt("artifacts", "unit0001", "report", 1),
        second.artifact,
      );
      assert.equal(await a.getArtifactAt("artifacts", "unit0001", "report", 2), undefined);
      assert.equal(await a.getArtifact("art_nosuchthing0"), undefined);
      assert.deepEqual(
        await a.findArtifactByHashes(first.artifact.md5, first.artifact.challenge),
        other.artifact,
      );
      assert.equal(await a.findArtifactByHashes(first.artifact.md5, "0".repeat(32)), undefined);
      assert.equal(await a.countArtifactsWithBlob(first.artifact.sha256), 2);
    });

    void it("dedupes the same content under one name when asked", async () => {
      const a = store().asyncActions;
      const first = await a.addArtifact(artifactInput({ ownerId: "dedupe01" }), { dedupe: true });
      const again = await a.addArtifact(artifactInput({ ownerId: "dedupe01" }), { dedupe: true });
      assert.equal(again.created, false);
      assert.deepEqual(again.artifact, first.artifact);
      const forced = await a.addArtifact(artifactInput({ ownerId: "dedupe01" }));
      assert.equal(forced.artifact.index, 1);
    });

    void it("lists newest first with filters and cursor paging", async () => {
      const job = await requestIn(store(), "EXECUTING");
      const a = store().asyncActions;
      const made = [];
      for (let i = 0; i < 5; i++) {
        made.push(
          (
            await a.addArtifact(
              artifactInput({
                ownerId: `list${i}`,
                jobRequestId: job.id,
                taskType: i % 2 ? "odd" : "even",
              }),
            )
          ).artifact,
        );
      }
      await a.addArtifact(artifactInput({ ownerId: "elsewhere" }));
      const page1 = await a.listArtifacts({ jobRequestId: job.id, limit: 2 });
      assert.deepEqual(
        page1.items.map((x) => x.ownerId),
        ["list4", "list3"],
      );
      assert.ok(page1.nextCursor !== undefined);
      const page2 = await a.listArtifacts({
        jobRequestId: job.id,
        limit: 2,
        before: page1.nextCursor,
      });
      assert.deepEqual(
        page2.items.map((x) => x.ownerId),
        ["list2", "list1"],
      );
      const page3 = await a.listArtifacts({
        jobRequestId: job.id,
        limit: 2,
        before: page2.nextCursor,
      });
      assert.deepEqual(
        page3.items.map((x) => x.ownerId),
        ["list0"],
      );
      assert.equal(page3.nextCursor, undefined);
      const odd = await a.listArtifacts({ jobRequestId: job.id, taskType: "odd" });
      assert.deepEqual(
        odd.items.map((x) => x.ownerId),
        ["list3", "list1"],
      );
      assert.deepEqual(
        (await a.listArtifacts({ ownerId: "list2", property: "report", store: "artifacts" })).items,
        [made[2]],
      );
    });

    void it("deletes what expired, and only that", async () => {
      const a = store().asyncActions;
      const now = new Date(Date.UTC(2030, 0, 1));
      const old = await a.addArtifact(
        artifactInput({ ownerId: "exp1", expiresAt: new Date(now.getTime() - 1) }),
      );
      const edge = await a.addArtifact(artifactInput({ ownerId: "exp2", expiresAt: now }));
      const young = await a.addArtifact(
        artifactInput({ ownerId: "exp3", expiresAt: new Date(now.getTime() + 1) }),
      );
      const forever = await a.addArtifact(artifactInput({ ownerId: "exp4" }));
      const first = await a.deleteExpiredArtifacts(now, 1);
      assert.deepEqual(
        first.map((x) => x.id),
        [old.artifact.id],
      );
      const rest = await a.deleteExpiredArtifacts(now, 100);
      assert.deepEqual(
        rest.map((x) => x.id),
        [edge.artifact.id],
      );
      assert.ok(await a.getArtifact(young.artifact.id));
      assert.ok(await a.getArtifact(forever.artifact.id));
      assert.equal(await a.getArtifact(old.artifact.id), undefined);
    });

    void it("with a server, deletes and counts only artifacts whose blobs are in its data dir", async () => {
      const a = store().asyncActions;
      const now = new Date(Date.UTC(2030, 0, 1));
      const expired = new Date(now.getTime() - 1);
      const sha256 = "c".repeat(64);
      const onA = await a.addArtifact(
        artifactInput({ ownerId: "srvA", expiresAt: expired, sha256, server: "dir-a" }),
      );
      const onB = await a.addArtifact(
        artifactInput({ ownerId: "srvB", expiresAt: expired, sha256, server: "dir-b" }),
      );
      const legacy = await a.addArtifact(
        artifactInput({ ownerId: "srvNone", expiresAt: expired, sha256 }),
      );
      assert.equal(onA.artifact.server, "dir-a");
      assert.deepEqual(await a.getArtifact(onA.artifact.id), onA.artifact);
      assert.equal(legacy.artifact.server, undefined);
      assert.equal(await a.countArtifactsWithBlob(sha256), 3);
      assert.equal(
        await a.countArtifactsWithBlob(sha256, "dir-a"),
        2,
        "its own and the legacy one",
      );
      const gone = await a.deleteExpiredArtifacts(now, 100, "dir-a");
      assert.deepEqual(gone.map((x) => x.id).sort(), [onA.artifact.id, legacy.artifact.id].sort());
      assert.ok(await a.getArtifact(onB.artifact.id), "dir-b's stays for dir-b to remove");
      assert.equal(await a.countArtifactsWithBlob(sha256, "dir-a"), 0);
      assert.equal(await a.countArtifactsWithBlob(sha256, "dir-b"), 1);
    });
  });

  void describe("schedules", () => {
    const t0 = new Date(Date.UTC(2030, 0, 1, 0, 0, 0));
    const at = (s: number) => new Date(t0.getTime() + s * 1000);

    void it("creates anchored at now, updates cron keeping the last firing, deletes", async () => {
      const a = store().asyncActions;
      const made = await a.upsertSchedule({ jobType: "nightly", cron: "0 0 * * *" }, t0);
      assert.deepEqual(
        { ...made, createdAt: undefined, updatedAt: undefined },
        {
          jobType: "nightly",
          cron: "0 0 * * *",
          paused: false,
          lastFiredAt: t0,
          createdAt: undefined,
          updatedAt: undefined,
        },
      );
      const same = await a.upsertSchedule({ jobType: "nightly", cron: "0 0 * * *" }, at(50));
      assert.deepEqual(same, made);
      const changed = await a.upsertSchedule(
        { jobType: "nightly", cron: "*/5 * * * * *", timezone: "Europe/Paris" },
        at(60),
      );
      assert.equal(changed.cron, "*/5 * * * * *");
      assert.equal(changed.timezone, "Europe/Paris");
      assert.deepEqual(changed.lastFiredAt, t0);
      assert.deepEqual(await a.listSchedules(), [changed]);
      assert.deepEqual(await a.getSchedule("nightly"), changed);
      assert.equal(await a.deleteSchedule("nightly"), true);
      assert.equal(await a.deleteSchedule("nightly"), false);
      assert.equal(await a.getSchedule("nightly"), undefined);
    });

    void it("fires once per claimed time with the saved definition, atomically", async () => {
      const s = store();
      await s.putDefinition(jobDef("cronjob", { maxConcurrency: 2 }), "src");
      await s.asyncActions.upsertSchedule({ jobType: "cronjob", cron: "* * * * * *" }, t0);
      const fired = await s.asyncActions.fireSchedule("cronjob", t0, at(5), {
        params: { k: "v" },
        maxConcurrency: 2,
      });
      assert.equal(fired.fired, true);
      assert.equal(fired.jobRequest?.jobType, "cronjob");
      assert.equal(fired.jobRequest?.state, "PENDING");
      assert.equal(fired.jobRequest?.submittedBy, "schedule");
      assert.deepEqual(fired.jobRequest?.params, { k: "v" });
      assert.deepEqual(fired.jobRequest?.scheduledAt, at(5));
      assert.deepEqual(fired.jobRequest?.definition, jobDef("cronjob", { maxConcurrency: 2 }));
      assert.deepEqual(fired.schedule?.lastFiredAt, at(5));
      assert.equal(fired.schedule?.lastJobRequestId, fired.jobRequest?.id);
      // A second claimer with the old expectation loses and changes nothing.
      const lost = await s.asyncActions.fireSchedule("cronjob", t0, at(5), { params: {} });
      assert.equal(lost.fired, false);
      assert.equal(lost.jobRequest, undefined);
      assert.deepEqual(lost.schedule?.lastFiredAt, at(5));
      const page = await s.listJobRequests({ jobType: "cronjob" });
      assert.equal(page.items.length, 1);
    });

    void it("a firing that fails takes back the definition row it made", async () => {
      const s = store();
      await s.putDefinition(jobDef("nightly"), "src");
      await s.asyncActions.upsertSchedule({ jobType: "nightly", cron: "* * * * * *" }, t0);
      // The firing stores the definition's text, then its job insert fails (a value the
      // database refuses): the transaction takes back both, and the claim of the time.
      const unusable = {} as unknown as number;
      await assert.rejects(
        s.asyncActions.fireSchedule("nightly", t0, at(1), { params: {}, maxConcurrency: unusable }),
      );
      // Another definition now gets the id the rolled-back row had (SQLite)...
      const other = await s.createJobRequest({
        jobType: "other",
        definition: jobDef("other"),
        params: {},
      });
      // ...which must not be handed out again for the first one's text.
      const fired = await s.asyncActions.fireSchedule("nightly", t0, at(1), { params: {} });
      assert.equal(fired.fired, true);
      assert.deepEqual(fired.jobRequest?.definition, jobDef("nightly"));
      const again = await s.getJobRequest(fired.jobRequest!.id);
      assert.deepEqual(again?.definition, jobDef("nightly"));
      assert.deepEqual((await s.getJobRequest(other.id))?.definition, jobDef("other"));
    });

    void it("concurrent claims of one time fire exactly once", async () => {
      const s = store();
      await s.putDefinition(jobDef("race"), "src");
      await s.asyncActions.upsertSchedule({ jobType: "race", cron: "* * * * * *" }, t0);
      const results = await Promise.all(
        Array.from({ length: 8 }, () =>
          s.asyncActions.fireSchedule("race", t0, at(1), { params: {} }),
        ),
      );
      assert.equal(results.filter((r) => r.fired).length, 1);
      assert.equal((await s.listJobRequests({ jobType: "race" })).items.length, 1);
    });

    void it("pause stops firing; resume re-anchors; a paused job type skips the time", async () => {
      const s = store();
      await s.putDefinition(jobDef("p"), "src");
      await s.asyncActions.upsertSchedule({ jobType: "p", cron: "* * * * * *" }, t0);
      const paused = await s.asyncActions.setSchedulePaused("p", true, at(1));
      assert.equal(paused?.paused, true);
      assert.deepEqual(paused?.lastFiredAt, t0);
      assert.equal(
        (await s.asyncActions.fireSchedule("p", t0, at(2), { params: {} })).fired,
        false,
      );
      const resumed = await s.asyncActions.setSchedulePaused("p", false, at(10));
      assert.equal(resumed?.paused, false);
      assert.deepEqual(resumed?.lastFiredAt, at(10));
      const again = await s.asyncActions.setSchedulePaused("p", false, at(20));
      assert.deepEqual(again?.lastFiredAt, at(10), "resuming a running schedule changes nothing");
      await s.setDefinitionPaused("p", true);
      const skipped = await s.asyncActions.fireSchedule("p", at(10), at(11), { params: {} });
      assert.equal(skipped.fired, true);
      assert.equal(skipped.jobRequest, undefined);
      assert.deepEqual(skipped.schedule?.lastFiredAt, at(11));
      assert.equal((await s.listJobRequests({ jobType: "p" })).items.length, 0);
      assert.equal(await s.asyncActions.setSchedulePaused("nope", true, t0), undefined);
    });

    void it("lists definition versions", async () => {
      const s = store();
      await s.putDefinition(jobDef("v1"), "src");
      await s.putDefinition(jobDef("v1"), "src");
      await s.putDefinition(jobDef("v2"), "src");
      const versions = await s.asyncActions.definitionVersions();
      versions.sort((x, y) => x.jobType.localeCompare(y.jobType));
      assert.deepEqual(versions, [
        { jobType: "v1", version: 2 },
        { jobType: "v2", version: 1 },
      ]);
    });
  });
}
