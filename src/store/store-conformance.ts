/**
 * The store conformance suite: one set of node:test tests that every Store backend must
 * pass (CONVENTIONS: "one conformance suite runs against every store backend"). A
 * backend's test file calls storeConformance() with a function that opens a fresh,
 * migrated, empty store; every test gets its own and closes it.
 */
import assert from "node:assert/strict";
import { after, afterEach, beforeEach, describe, it } from "node:test";
import { ValidationError } from "../core/errors.ts";
import type { JobRequest } from "../core/job-request.ts";
import type { Store } from "./store.ts";
import { asyncActionConformance } from "./store-conformance-async-actions.ts";
import { jobConformance } from "./store-conformance-jobs.ts";
import { processJobConformance } from "./store-conformance-process-jobs.ts";
import { taskConformance } from "./store-conformance-tasks.ts";
import { tokenConformance } from "./store-conformance-tokens.ts";
import {
  TRICKY_PARAMS,
  jobDef,
  requestIn,
  type CurrentStore,
} from "./store-conformance-fixtures.ts";

/**
 * Registers the suite. `open` resolves a fresh migrated store, or undefined when the
 * backend is not available here (the suite then skips, saying `skipReason()`).
 * `cleanup` runs once after the suite (drop schemas, remove folders).
 */
export function storeConformance(
  name: string,
  open: () => Promise<Store | undefined>,
  cleanup?: () => Promise<void>,
  skipReason?: () => string | undefined,
): void {
  void describe(`store conformance: ${name}`, async () => {
    const probe = await open();
    if (!probe) {
      void it(
        `runs against ${name}`,
        {
          skip: skipReason?.() ?? `the ${name} store is not available here`,
        },
        () => {},
      );
      if (cleanup) after(cleanup);
      return;
    }
    await probe.close();

    let current: Store | undefined;
    const store: CurrentStore = () => {
      if (!current) throw new Error("no store open");
      return current;
    };
    beforeEach(async () => {
      const opened = await open();
      if (!opened) throw new Error(`${name} store went away during the suite`);
      current = opened;
    });
    afterEach(async () => {
      await current?.close();
      current = undefined;
    });
    if (cleanup) after(cleanup);

    void it("reports its kind and migrates idempotently", async () => {
      assert.ok(["sqlite", "postgres"].includes(store().kind));
      await store().migrate();
      await store().migrate();
    });

    definitionConformance(store);
    listingConformance(store);
    jobConformance(store);
    taskConformance(store);
    processJobConformance(store);
    restViewConformance(store);
    tokenConformance(store);
    asyncActionConformance(store);
  });
}

/** Store methods behind REST views: units across requests, pausing definitions. */
function restViewConformance(store: CurrentStore): void {
  void describe("REST views", () => {
    void it("lists executions of every request newest first, paged by cursor", async () => {
      assert.deepEqual(await store().listRecentTaskExecutions({}), { items: [] });
      const a = await requestIn(store(), "EXECUTING");
      const b = await requestIn(store(), "EXECUTING");
      const made: string[] = [];
      for (let i = 0; i < 7; i++) {
        const { execution } = await store().createTaskExecution({
          jobRequestId: i % 2 ? a.id : b.id,
          taskType: `t${i}`,
          method: "SHELL",
          jobAttempt: 0,
          attempt: 0,
        });
        made.push(execution.id);
      }
      const seen: string[] = [];
      let before: number | undefined;
      for (let pages = 0; pages < 10; pages++) {
        const page = await store().listRecentTaskExecutions({ limit: 3, before });
        seen.push(...page.items.map((e) => e.id));
        if (page.nextCursor === undefined) break;
        before = page.nextCursor;
      }
      assert.deepEqual(seen, [...made].reverse());
      const all = await store().listRecentTaskExecutions({ limit: 7 });
      assert.equal(all.items.length, 7);
      assert.equal(all.nextCursor, undefined, "no cursor when the page holds the rest");
      await assert.rejects(store().listRecentTaskExecutions({ limit: 0 }), ValidationError);
    });

    void it("pauses and resumes a definition; undefined for an unknown type", async () => {
      await store().putDefinition(jobDef("p"), "p");
      assert.equal((await store().setDefinitionPaused("p", true))?.paused, true);
      assert.equal((await store().getDefinition("p"))?.paused, true);
      assert.equal((await store().setDefinitionPaused("p", false))?.paused, false);
      assert.equal(await store().setDefinitionPaused("nope", true), undefined);
    });
  });
}

function definitionConformance(store: CurrentStore): void {
  void describe("job definitions", () => {
    void it("puts version 1, then replaces with version + 1 keeping createdAt", async () => {
      const first = await store().putDefinition(
        jobDef("build", { description: "v1" }),
        "job_type: build\n",
      );
      assert.equal(first.version, 1);
      assert.equal(first.paused, false);
      assert.equal(first.source, "job_type: build\n");
      assert.deepEqual(first.definition, jobDef("build", { description: "v1" }));
      assert.deepEqual(first.createdAt, first.updatedAt);

      const second = await store().putDefinition(
        jobDef("build", { description: "v2 · 日本" }),
        "v2",
      );
      assert.equal(second.version, 2);
      assert.deepEqual(second.createdAt, first.createdAt);
      assert.ok(second.updatedAt.getTime() >= first.updatedAt.getTime());
      assert.equal(second.definition.description, "v2 · 日本");
      assert.deepEqual(await store().getDefinition("build"), second);
      assert.equal((await store().putDefinition(jobDef("build"), "v3")).version, 3);
    });

    void it("gets undefined for an unknown type, lists sorted by type, deletes once", async () => {
      assert.equal(await store().getDefinition("nope"), undefined);
      await store().putDefinition(jobDef("zeta"), "z");
      await store().putDefinition(jobDef("alpha"), "a");
      await store().putDefinition(jobDef("mid"), "m");
      assert.deepEqual(
        (await store().listDefinitions()).map((d) => d.jobType),
        ["alpha", "mid", "zeta"],
      );
      assert.equal(await store().deleteDefinition("mid"), true);
      assert.equal(await store().deleteDefinition("mid"), false);
      assert.equal(await store().getDefinition("mid"), undefined);
      assert.equal((await store().listDefinitions()).length, 2);
    });
  });
}

function listingConformance(store: CurrentStore): void {
  void describe("job requests: create, read, list", () => {
    void it("creates PENDING requests with increasing ids and round-trips JSON and dates", async () => {
      const before = Date.now();
      const definition = jobDef("json", {
        maxConcurrency: 3,
        variables: { R: { name: "R", value: "ü", secret: false } },
      });
      const scheduledAt = new Date("2031-02-03T04:05:06.789Z");
      const a = await store().createJobRequest({
        jobType: "json",
        definition,
        params: TRICKY_PARAMS,
        scheduledAt,
        submittedBy: "alice",
      });
      const b = await store().createJobRequest({ jobType: "json", definition, params: {} });
      assert.ok(Number.isInteger(a.id) && b.id > a.id);
      assert.equal(a.state, "PENDING");
      assert.equal(a.attempt, 0);
      assert.deepEqual(a.params, TRICKY_PARAMS);
      assert.deepEqual(a.definition, definition);
      assert.equal(a.scheduledAt.toISOString(), "2031-02-03T04:05:06.789Z");
      assert.equal(a.submittedBy, "alice");
      assert.ok(
        a.createdAt.getTime() >= before - 1000 && a.createdAt.getTime() <= Date.now() + 1000,
      );
      for (const key of [
        "startedAt",
        "endedAt",
        "owner",
        "leaseExpiresAt",
        "errorCode",
        "errorMessage",
      ]) {
        assert.ok(!(key in a), `${key} is absent on a new request`);
      }
      assert.ok(!("submittedBy" in b));
      // scheduledAt defaults to now.
      assert.ok(Math.abs(b.scheduledAt.getTime() - Date.now()) < 5000);
      assert.deepEqual(await store().getJobRequest(a.id), a);
      assert.equal(await store().getJobRequest(999_999), undefined);
    });

    void it("lists newest first with state and type filters", async () => {
      const made: JobRequest[] = [];
      for (const type of ["x", "y", "x", "y", "x"]) {
        made.push(
          await store().createJobRequest({ jobType: type, definition: jobDef(type), params: {} }),
        );
      }
      await store().finishJobRequest(made[0]!.id, { state: "FAILED" });
      await store().cancelPendingJobRequest(made[1]!.id);
      const ids = (page: { items: JobRequest[] }) => page.items.map((r) => r.id);
      const all = made.map((r) => r.id);
      assert.deepEqual(ids(await store().listJobRequests({})), [...all].reverse());
      assert.deepEqual(ids(await store().listJobRequests({ jobType: "x" })), [
        all[4],
        all[2],
        all[0],
      ]);
      assert.deepEqual(ids(await store().listJobRequests({ state: "FAILED" })), [all[0]]);
      assert.deepEqual(ids(await store().listJobRequests({ state: ["FAILED", "CANCELLED"] })), [
        all[1],
        all[0],
      ]);
      assert.deepEqual(ids(await store().listJobRequests({ state: "PENDING", jobType: "y" })), [
        all[3],
      ]);
      assert.deepEqual(ids(await store().listJobRequests({ state: [] })), [...all].reverse());
      assert.deepEqual(ids(await store().listJobRequests({ jobType: "none" })), []);
      assert.deepEqual(ids(await store().listJobRequests({ state: "COMPLETED" })), []);
      await assert.rejects(store().listJobRequests({ state: "BOGUS" as never }), ValidationError);
      await assert.rejects(store().listJobRequests({ limit: 0 }), ValidationError);
    });

    void it("pages with cursors: every request exactly once, no cursor on the last page", async () => {
      const all: number[] = [];
      for (let i = 0; i < 7; i++) {
        all.push(
          (await store().createJobRequest({ jobType: "p", definition: jobDef("p"), params: { i } }))
            .id,
        );
      }
      const seen: number[] = [];
      let before: number | undefined;
      let pages = 0;
      for (;;) {
        const page = await store().listJobRequests({
          limit: 3,
          ...(before === undefined ? {} : { before }),
        });
        pages++;
        seen.push(...page.items.map((r) => r.id));
        if (page.nextCursor === undefined) break;
        assert.equal(page.nextCursor, page.items[page.items.length - 1]?.id);
        before = page.nextCursor;
      }
      assert.equal(pages, 3);
      assert.deepEqual(seen, [...all].reverse());
      // An exact fit has no next page.
      const six = await store().listJobRequests({ limit: 6, before: all[6]! });
      assert.equal(six.items.length, 6);
      assert.equal(six.nextCursor, undefined);
      // Cursor with filter.
      const filtered = await store().listJobRequests({ jobType: "p", before: all[3]!, limit: 2 });
      assert.deepEqual(
        filtered.items.map((r) => r.id),
        [all[2], all[1]],
      );
      assert.equal(filtered.nextCursor, all[1]);
    });

    void it("defaults to 50 per page and caps the limit at 500", async () => {
      const creates: Promise<JobRequest>[] = [];
      for (let i = 0; i < 501; i++) {
        creates.push(
          store().createJobRequest({ jobType: "bulk", definition: jobDef("bulk"), params: { i } }),
        );
      }
      await Promise.all(creates);
      const first = await store().listJobRequests({});
      assert.equal(first.items.length, 50);
      assert.equal(first.nextCursor, first.items[49]?.id);
      const capped = await store().listJobRequests({ limit: 10_000 });
      assert.equal(capped.items.length, 500);
      assert.notEqual(capped.nextCursor, undefined);
      const rest = await store().listJobRequests({ limit: 500, before: capped.nextCursor! });
      assert.equal(rest.items.length, 1);
      assert.equal(rest.nextCursor, undefined);
    });

    void it("lists unfinished requests oldest first and counts by type and state", async () => {
      const a = await store().createJobRequest({
        jobType: "c",
        definition: jobDef("c"),
        params: {},
      });
      const b = await store().createJobRequest({
        jobType: "c",
        definition: jobDef("c"),
        params: {},
      });
      const c = await store().createJobRequest({
        jobType: "d",
        definition: jobDef("d"),
        params: {},
      });
      await store().finishJobRequest(b.id, { state: "FAILED" });
      assert.deepEqual(
        (await store().listUnfinishedJobRequests()).map((r) => r.id),
        [a.id, c.id],
      );
      assert.equal(await store().countJobRequests("c", ["PENDING"]), 1);
      assert.equal(await store().countJobRequests("c", ["PENDING", "FAILED"]), 2);
      assert.equal(await store().countJobRequests("c", ["READY", "STARTED", "EXECUTING"]), 0);
      assert.equal(await store().countJobRequests("c", []), 0);
      assert.equal(await store().countJobRequests("none", ["PENDING"]), 0);
    });
  });
}
