/**
 * Conformance: job request transitions, claims (atomicity, max_concurrency, schedule),
 * leases and cancellation.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IllegalTransitionError, NotFoundError, ValidationError } from "../core/errors.ts";
import type { JobRequest } from "../core/job-request.ts";
import { isFinal, sourcesOf, type State } from "../core/states.ts";
import { DEFERRAL_HEAD_START_MS, type Store } from "./store.ts";
import {
  LEASE_MS,
  OWNER,
  REACHABLE_JOB_STATES,
  claimOne,
  jobDef,
  nextPast,
  pendingRequest,
  requestIn,
  type CurrentStore,
  executionIn,
} from "./store-conformance-fixtures.ts";

type Outcome = "ok" | "illegal" | "undefined";

interface JobOperation {
  name: string;
  run: (store: Store, id: number) => Promise<unknown>;
  expect: (from: State) => Outcome;
  /** The state a successful call leaves. */
  to?: State;
}

const legalInto =
  (to: State) =>
  (from: State): Outcome =>
    sourcesOf(to).includes(from) ? "ok" : "illegal";

const JOB_OPERATIONS: JobOperation[] = [
  {
    name: "markJobExecuting",
    run: (s, id) => s.markJobExecuting(id),
    expect: legalInto("EXECUTING"),
    to: "EXECUTING",
  },
  ...(["COMPLETED", "FAILED", "CANCELLED"] as const).map((state) => ({
    name: `finishJobRequest(${state})`,
    run: (s: Store, id: number) => s.finishJobRequest(id, { state }),
    expect: legalInto(state),
    to: state,
  })),
  {
    name: "retryJobRequest",
    run: (s, id) => s.retryJobRequest(id, new Date()),
    expect: (from) => (from === "EXECUTING" || from === "FAILED" ? "ok" : "illegal"),
    to: "PENDING",
  },
  {
    name: "restartJobRequest",
    run: (s, id) => s.restartJobRequest(id),
    expect: (from) => (from === "FAILED" || from === "CANCELLED" ? "ok" : "illegal"),
    to: "PENDING",
  },
  {
    name: "cancelPendingJobRequest",
    run: (s, id) => s.cancelPendingJobRequest(id),
    expect: (from) =>
      ["PENDING", "READY", "PAUSED"].includes(from)
        ? "ok"
        : isFinal(from)
          ? "illegal"
          : "undefined",
    to: "CANCELLED",
  },
  {
    name: "requestCancel",
    run: (s, id) => s.requestCancel(id),
    expect: (from) => (isFinal(from) ? "illegal" : "ok"),
  },
];

export function jobConformance(store: CurrentStore): void {
  void describe("job request transitions", () => {
    for (const op of JOB_OPERATIONS) {
      void it(`${op.name}: follows the transition table from every reachable state`, async () => {
        for (const from of REACHABLE_JOB_STATES) {
          const request = await requestIn(store(), from);
          assert.equal(request.state, from);
          const outcome = op.expect(from);
          if (outcome === "illegal") {
            await assert.rejects(op.run(store(), request.id), (error: unknown) => {
              assert.ok(
                error instanceof IllegalTransitionError,
                `${op.name} from ${from}: ${String(error)}`,
              );
              assert.equal(error.code, "COLONY_ILLEGAL_TRANSITION");
              assert.equal(error.status, 409);
              assert.equal(error.details?.from, from);
              return true;
            });
            assert.deepEqual(await store().getJobRequest(request.id), request, "nothing changed");
          } else if (outcome === "undefined") {
            assert.equal(await op.run(store(), request.id), undefined, `${op.name} from ${from}`);
            assert.deepEqual(await store().getJobRequest(request.id), request, "nothing changed");
          } else {
            const result = (await op.run(store(), request.id)) as JobRequest;
            assert.equal(result.state, op.to ?? from, `${op.name} from ${from}`);
            assert.deepEqual(await store().getJobRequest(request.id), result);
          }
        }
        await assert.rejects(op.run(store(), 987_654), NotFoundError);
      });
    }

    void it("markJobExecuting sets startedAt once per attempt", async () => {
      const request = await pendingRequest(store());
      await claimOne(store(), request);
      const first = await store().markJobExecuting(request.id);
      assert.ok(first.startedAt instanceof Date);
      await new Promise((resolve) => setTimeout(resolve, 5));
      // Handed back and started again (another engine): the same attempt, the same start.
      const back = await store().deferJobRequest(request.id, OWNER, nextPast(), {
        errorCode: "COLONY_NO_ANT",
        errorMessage: "no ant",
      });
      await claimOne(store(), back!);
      assert.deepEqual((await store().markJobExecuting(request.id)).startedAt, first.startedAt);
      await store().finishJobRequest(request.id, { state: "FAILED" });
      const retried = await store().retryJobRequest(request.id, nextPast());
      await claimOne(store(), retried);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const second = await store().markJobExecuting(request.id);
      assert.ok(second.startedAt!.getTime() > first.startedAt!.getTime(), "its own start");
    });

    void it("finishJobRequest records endedAt and the error; only final states are accepted", async () => {
      const request = await requestIn(store(), "EXECUTING");
      await assert.rejects(
        store().finishJobRequest(request.id, { state: "READY" as never }),
        ValidationError,
      );
      const failed = await store().finishJobRequest(request.id, {
        state: "FAILED",
        errorCode: "COLONY_TASK_FAILED",
        errorMessage: "task 'build' exited with 2 · ✗",
      });
      assert.equal(failed.state, "FAILED");
      assert.ok(failed.endedAt instanceof Date);
      assert.equal(failed.errorCode, "COLONY_TASK_FAILED");
      assert.equal(failed.errorMessage, "task 'build' exited with 2 · ✗");
      assert.equal(failed.owner, OWNER, "the owner stays for the record");
    });

    void it("retry and restart count attempts up and clear owner, lease, end, error and cancel", async () => {
      const request = await requestIn(store(), "EXECUTING");
      await store().requestCancel(request.id);
      await store().finishJobRequest(request.id, {
        state: "FAILED",
        errorCode: "E",
        errorMessage: "m",
      });
      const at = new Date("2030-01-01T00:00:00.123Z");
      const retried = await store().retryJobRequest(request.id, at);
      assert.equal(retried.state, "PENDING");
      assert.equal(retried.attempt, 1);
      assert.equal(retried.scheduledAt.toISOString(), at.toISOString());
      // startedAt and endedAt are the attempt's: a new one has neither yet.
      for (const key of [
        "owner",
        "leaseExpiresAt",
        "startedAt",
        "endedAt",
        "errorCode",
        "errorMessage",
      ]) {
        assert.ok(!(key in retried), `${key} cleared`);
      }
      assert.equal(await store().isCancelRequested(request.id), false);

      await store().cancelPendingJobRequest(request.id);
      const restarted = await store().restartJobRequest(request.id);
      assert.equal(restarted.attempt, 2);
      assert.equal(restarted.state, "PENDING");
      assert.ok(Math.abs(restarted.scheduledAt.getTime() - Date.now()) < 5000);
      assert.ok(!("startedAt" in restarted) && !("endedAt" in restarted));
    });

    void it("cancel requests are recorded until the next attempt", async () => {
      const request = await requestIn(store(), "EXECUTING");
      assert.equal(await store().isCancelRequested(request.id), false);
      const asked = await store().requestCancel(request.id);
      assert.equal(asked.state, "EXECUTING", "asking does not change the state");
      assert.equal(await store().isCancelRequested(request.id), true);
      await store().requestCancel(request.id); // asking twice is fine
      assert.equal(await store().isCancelRequested(request.id), true);
      await assert.rejects(store().isCancelRequested(424_242), NotFoundError);
      const cancelled = await store().finishJobRequest(request.id, { state: "CANCELLED" });
      assert.ok(cancelled.endedAt instanceof Date);
    });
  });

  void describe("deferrals", () => {
    const why = { errorCode: "COLONY_NO_ANT", errorMessage: "no connected ant serves method X" };

    void it("deferJobRequest hands a claimed request back, due later, with why; starting it clears why", async () => {
      const claimed = await claimOne(store(), await pendingRequest(store()));
      const later = new Date(Date.now() + 60_000);
      assert.equal(
        await store().deferJobRequest(claimed.id, "engine-b", later, why),
        undefined,
        "another engine's claim is not deferred",
      );
      assert.deepEqual(await store().getJobRequest(claimed.id), claimed, "nothing changed");
      const deferred = (await store().deferJobRequest(claimed.id, OWNER, later, why))!;
      assert.equal(deferred.state, "PENDING");
      assert.equal(deferred.scheduledAt.getTime(), later.getTime());
      assert.equal(deferred.errorCode, "COLONY_NO_ANT");
      assert.equal(deferred.errorMessage, why.errorMessage);
      assert.equal(deferred.attempt, claimed.attempt, "not an attempt of its own");
      assert.equal(deferred.owner, OWNER, "who deferred it");
      assert.ok(!("leaseExpiresAt" in deferred), "no lease: nobody runs it");
      assert.deepEqual(await store().getJobRequest(claimed.id), deferred);
      assert.equal(
        await store().deferJobRequest(claimed.id, OWNER, later, why),
        undefined,
        "a PENDING request is not deferred again",
      );
      assert.deepEqual(
        (await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 100)).filter(
          (r) => r.id === claimed.id,
        ),
        [],
        "not due before its time",
      );
      const mine = (at: number) =>
        store()
          .claimDueJobRequests(OWNER, new Date(at), LEASE_MS, 1000)
          .then((rs) => rs.filter((r) => r.id === claimed.id));
      assert.deepEqual(await mine(later.getTime() - 1), [], "its engine claims it at its time");
      const again = await mine(later.getTime());
      assert.equal(again.length, 1, "and not before");
      const started = await store().markJobExecuting(claimed.id);
      assert.ok(!("errorCode" in started) && !("errorMessage" in started), "why is cleared");
      assert.deepEqual(await store().getJobRequest(claimed.id), started);
    });

    void it("other engines may claim a deferred request a little earlier than the one that deferred it", async () => {
      const claimed = await claimOne(store(), await pendingRequest(store()));
      const later = new Date(Date.now() + 60_000);
      await store().deferJobRequest(claimed.id, OWNER, later, why);
      const other = (at: number) =>
        store()
          .claimDueJobRequests("engine-b", new Date(at), LEASE_MS, 1000)
          .then((rs) => rs.filter((r) => r.id === claimed.id));
      assert.deepEqual(await other(later.getTime() - DEFERRAL_HEAD_START_MS - 1), []);
      const [taken] = await other(later.getTime() - DEFERRAL_HEAD_START_MS);
      assert.equal(taken?.owner, "engine-b");
      assert.equal(taken?.state, "READY");
    });

    void it("deferJobRequest hands back a started request with its executions; a cancel makes it due to be ended by an engine", async () => {
      const claimed = await claimOne(store(), await pendingRequest(store()));
      const started = await store().markJobExecuting(claimed.id);
      const done = await executionIn(store(), claimed.id, "COMPLETED");
      const next = await executionIn(store(), claimed.id, "READY");
      const later = new Date(Date.now() + 60_000);
      assert.equal(
        await store().deferJobRequest(claimed.id, "engine-b", later, why),
        undefined,
        "another engine's running job is not handed back",
      );
      const back = (await store().deferJobRequest(claimed.id, OWNER, later, why))!;
      assert.equal(back.state, "PENDING");
      assert.equal(back.errorCode, "COLONY_NO_ANT");
      assert.equal(back.attempt, started.attempt);
      assert.equal(back.startedAt?.getTime(), started.startedAt?.getTime(), "it has started");
      assert.deepEqual(
        (await store().listTaskExecutions(claimed.id)).map((e) => [e.id, e.state]),
        [
          [done.id, "COMPLETED"],
          [next.id, "READY"],
        ],
        "its executions stay as they were",
      );
      const [taken] = (await store().claimDueJobRequests("engine-b", later, LEASE_MS, 1000)).filter(
        (r) => r.id === claimed.id,
      );
      assert.equal(taken?.state, "READY", "another engine claims it again");
      const again = await store().markJobExecuting(claimed.id);
      assert.equal(again.startedAt?.getTime(), started.startedAt?.getTime(), "first start kept");
      assert.ok(!("errorCode" in again), "why is cleared");

      const other = await claimOne(store(), await pendingRequest(store()));
      await store().markJobExecuting(other.id);
      await executionIn(store(), other.id, "COMPLETED");
      await executionIn(store(), other.id, "READY");
      const waiting = (await store().deferJobRequest(other.id, OWNER, later, why))!;
      assert.equal(
        await store().cancelPendingJobRequest(other.id),
        undefined,
        "a started job is not ended in the store (its always_run tasks must run)",
      );
      assert.deepEqual(await store().getJobRequest(other.id), waiting, "nothing changed");
      const now = new Date();
      const asked = await store().requestCancel(other.id);
      assert.equal(asked.state, "PENDING");
      assert.ok(asked.scheduledAt.getTime() <= now.getTime() + 1000, "due now");
      assert.equal(asked.owner, undefined, "for every engine");
      assert.equal(await store().isCancelRequested(other.id), true);
      const [toEnd] = (
        await store().claimDueJobRequests("engine-b", new Date(), LEASE_MS, 1000)
      ).filter((r) => r.id === other.id);
      assert.equal(toEnd?.state, "READY", "an engine takes it to end it");
    });

    void it("deferJobRequest leaves a request whose cancel was asked", async () => {
      const claimed = await claimOne(store(), await pendingRequest(store()));
      await store().requestCancel(claimed.id);
      const before = await store().getJobRequest(claimed.id);
      assert.equal(
        await store().deferJobRequest(claimed.id, OWNER, new Date(Date.now() + 60_000), why),
        undefined,
      );
      assert.deepEqual(await store().getJobRequest(claimed.id), before);
    });

    void it("wakeDeferredJobRequests makes deferred requests due now, and only those", async () => {
      const later = new Date(Date.now() + 3_600_000);
      const a = await claimOne(store(), await pendingRequest(store()));
      await store().deferJobRequest(a.id, OWNER, later, why);
      const b = await claimOne(store(), await pendingRequest(store()));
      await store().deferJobRequest(b.id, OWNER, later, { ...why, errorCode: "OTHER" });
      const scheduled = await store().createJobRequest({
        jobType: "conformance",
        definition: jobDef("conformance"),
        params: {},
        scheduledAt: later,
      });
      const now = new Date();
      assert.ok((await store().wakeDeferredJobRequests("COLONY_NO_ANT", now)) >= 1);
      const woken = (await store().getJobRequest(a.id))!;
      assert.equal(woken.scheduledAt.getTime(), now.getTime());
      assert.equal(woken.owner, undefined, "due for every engine, the one that deferred it too");
      assert.equal((await store().getJobRequest(b.id))!.scheduledAt.getTime(), later.getTime());
      assert.equal(
        (await store().getJobRequest(scheduled.id))!.scheduledAt.getTime(),
        later.getTime(),
        "a request scheduled for later by its user stays",
      );
      assert.equal(await store().wakeDeferredJobRequests("COLONY_NO_ANT", now), 0, "done once");
    });
  });

  void describe("claims", () => {
    void it("claims due requests oldest first up to the limit, with owner and lease", async () => {
      const now = new Date();
      const made: JobRequest[] = [];
      for (const ago of [5000, 1000, 9000, 3000, 7000]) {
        made.push(
          await store().createJobRequest({
            jobType: "c",
            definition: jobDef("c"),
            params: {},
            scheduledAt: new Date(now.getTime() - ago),
          }),
        );
      }
      const future = await store().createJobRequest({
        jobType: "c",
        definition: jobDef("c"),
        params: {},
        scheduledAt: new Date(now.getTime() + 60_000),
      });
      assert.deepEqual(await store().claimDueJobRequests(OWNER, now, LEASE_MS, 0), []);
      const first = await store().claimDueJobRequests(OWNER, now, LEASE_MS, 3);
      assert.deepEqual(
        first.map((r) => r.id),
        [made[2]!.id, made[4]!.id, made[0]!.id],
      );
      for (const r of first) {
        assert.equal(r.state, "READY");
        assert.equal(r.owner, OWNER);
        assert.equal(r.leaseExpiresAt?.getTime(), now.getTime() + LEASE_MS);
        assert.deepEqual(await store().getJobRequest(r.id), r);
      }
      const second = await store().claimDueJobRequests("engine-b", now, LEASE_MS, 10);
      assert.deepEqual(
        second.map((r) => r.id),
        [made[3]!.id, made[1]!.id],
      );
      assert.deepEqual(
        await store().claimDueJobRequests(OWNER, now, LEASE_MS, 10),
        [],
        "the future one waits",
      );
      assert.equal((await store().getJobRequest(future.id))?.state, "PENDING");
      const later = await store().claimDueJobRequests(
        OWNER,
        new Date(now.getTime() + 61_000),
        LEASE_MS,
        10,
      );
      assert.deepEqual(
        later.map((r) => r.id),
        [future.id],
      );
    });

    void it("four concurrent claimers over 50 due requests claim each exactly once", async () => {
      const creates: Promise<JobRequest>[] = [];
      for (let i = 0; i < 50; i++) {
        creates.push(
          store().createJobRequest({
            jobType: "race",
            definition: jobDef("race"),
            params: { i },
            scheduledAt: new Date(Date.now() - 1000),
          }),
        );
      }
      const ids = new Set((await Promise.all(creates)).map((r) => r.id));
      const claimer = async (owner: string) => {
        const got: JobRequest[] = [];
        for (;;) {
          const batch = await store().claimDueJobRequests(owner, new Date(), LEASE_MS, 3);
          if (batch.length === 0) return got;
          got.push(...batch);
        }
      };
      const results = await Promise.all(["c1", "c2", "c3", "c4"].map(claimer));
      const claimed = results.flat().map((r) => r.id);
      assert.equal(claimed.length, 50, "nothing claimed twice");
      assert.deepEqual(new Set(claimed), ids, "everything claimed");
      for (const [index, owner] of ["c1", "c2", "c3", "c4"].entries()) {
        for (const r of results[index]!)
          assert.equal((await store().getJobRequest(r.id))?.owner, owner);
      }
    });

    void it("respects the snapshot's maxConcurrency, counting READY, STARTED and EXECUTING", async () => {
      const limited = jobDef("limited", { maxConcurrency: 2 });
      const due = new Date(Date.now() - 1000);
      const made: JobRequest[] = [];
      for (let i = 0; i < 5; i++) {
        made.push(
          await store().createJobRequest({
            jobType: "limited",
            definition: limited,
            params: { i },
            scheduledAt: due,
          }),
        );
      }
      const free = await store().createJobRequest({
        jobType: "free",
        definition: jobDef("free"),
        params: {},
        scheduledAt: due,
      });
      const first = await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 10);
      assert.deepEqual(
        first.map((r) => r.id).sort((a, b) => a - b),
        [made[0]!.id, made[1]!.id, free.id],
      );
      assert.equal(
        await store().countJobRequests("limited", ["PENDING"]),
        3,
        "the rest stay PENDING",
      );
      assert.deepEqual(await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 10), []);
      await store().markJobExecuting(made[0]!.id);
      assert.deepEqual(
        await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 10),
        [],
        "EXECUTING counts",
      );
      await store().finishJobRequest(made[0]!.id, { state: "COMPLETED" });
      const next = await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 10);
      assert.deepEqual(
        next.map((r) => r.id),
        [made[2]!.id],
      );
    });

    void it("a type at its limit does not starve other types", async () => {
      const base = Date.now() - 100_000;
      const a: JobRequest[] = [];
      for (let i = 0; i < 5; i++) {
        a.push(
          await store().createJobRequest({
            jobType: "a",
            definition: jobDef("a", { maxConcurrency: 1 }),
            params: {},
            scheduledAt: new Date(base + i),
          }),
        );
      }
      const b: JobRequest[] = [];
      for (let i = 0; i < 3; i++) {
        b.push(
          await store().createJobRequest({
            jobType: "b",
            definition: jobDef("b"),
            params: {},
            scheduledAt: new Date(base + 100 + i),
          }),
        );
      }
      const claimed = await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 3);
      assert.deepEqual(
        claimed.map((r) => r.id),
        [a[0]!.id, b[0]!.id, b[1]!.id],
      );
    });

    void it("merges types oldest first, each limited type within its free slots", async () => {
      const base = Date.now() - 100_000;
      const made: Array<{ type: string; id: number }> = [];
      const limits: Record<string, number | undefined> = {
        full: 1,
        two: 2,
        three: 3,
        none: undefined,
      };
      // Interleaved: full, two, three, none, full, two, ... (12 rounds).
      for (let i = 0; i < 12; i++) {
        for (const type of ["full", "two", "three", "none"]) {
          const max = limits[type];
          const r = await store().createJobRequest({
            jobType: type,
            definition: jobDef(type, max === undefined ? {} : { maxConcurrency: max }),
            params: {},
            scheduledAt: new Date(base + made.length),
          });
          made.push({ type, id: r.id });
        }
      }
      // "full" is at its limit: its oldest request runs.
      const [running] = await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 1);
      assert.equal(running?.id, made[0]!.id);
      const claimed = await store().claimDueJobRequests(OWNER, new Date(), LEASE_MS, 8);
      const expected = made
        .slice(1)
        .filter((m, k, rest) => {
          const before = rest.slice(0, k).filter((o) => o.type === m.type).length;
          return m.type === "none" || (m.type !== "full" && before < limits[m.type]!);
        })
        .slice(0, 8);
      assert.deepEqual(
        claimed.map((r) => r.id),
        expected.map((m) => m.id),
      );
      assert.deepEqual(
        expected.map((m) => m.type),
        ["two", "three", "none", "two", "three", "none", "three", "none"],
      );
    });

    void it("concurrent claimers never exceed maxConcurrency together", async () => {
      const def = jobDef("tight", { maxConcurrency: 3 });
      const due = new Date(Date.now() - 1000);
      await Promise.all(
        Array.from({ length: 12 }, () =>
          store().createJobRequest({
            jobType: "tight",
            definition: def,
            params: {},
            scheduledAt: due,
          }),
        ),
      );
      const results = await Promise.all(
        ["c1", "c2", "c3", "c4"].map((owner) =>
          store().claimDueJobRequests(owner, new Date(), LEASE_MS, 5),
        ),
      );
      // Racing claimers may leave a free slot to the next round (PostgreSQL skips a type
      // another claimer is counting), but together they never exceed the limit.
      assert.ok(results.flat().length <= 3, `claimed ${results.flat().length} of max 3`);
      const later = await store().claimDueJobRequests("c5", new Date(), LEASE_MS, 5);
      assert.equal(results.flat().length + later.length, 3);
      assert.equal(await store().countJobRequests("tight", ["READY"]), 3);
    });
  });

  void describe("leases", () => {
    void it("takes over only after the lease expired, or from the expected owner", async () => {
      const request = await pendingRequest(store());
      const claimed = await claimOne(store(), request, "engine-a");
      const t0 = request.scheduledAt.getTime();
      const before = new Date(t0 + LEASE_MS - 1);
      assert.equal(
        await store().takeOverJobRequest(request.id, "engine-b", before, LEASE_MS),
        undefined,
      );
      assert.deepEqual(await store().getJobRequest(request.id), claimed, "nothing changed");
      assert.equal(
        await store().takeOverJobRequest(request.id, "engine-b", before, LEASE_MS, "engine-c"),
        undefined,
        "a wrong expected owner does not help",
      );
      const handedOver = await store().takeOverJobRequest(
        request.id,
        "engine-b",
        before,
        LEASE_MS,
        "engine-a",
      );
      assert.equal(handedOver?.owner, "engine-b");
      assert.equal(handedOver?.leaseExpiresAt?.getTime(), before.getTime() + LEASE_MS);
      assert.equal(handedOver?.state, "READY", "a takeover does not change the state");

      const expiry = before.getTime() + LEASE_MS;
      assert.equal(
        await store().takeOverJobRequest(request.id, "engine-a", new Date(expiry - 1), LEASE_MS),
        undefined,
      );
      const expired = await store().takeOverJobRequest(
        request.id,
        "engine-a",
        new Date(expiry),
        LEASE_MS,
      );
      assert.equal(expired?.owner, "engine-a");
      const own = await store().takeOverJobRequest(
        request.id,
        "engine-a",
        new Date(expiry + 1),
        LEASE_MS,
      );
      assert.equal(own?.owner, "engine-a", "the holder may take its own request again");

      await assert.rejects(
        store().takeOverJobRequest(31_337, "x", new Date(), LEASE_MS),
        NotFoundError,
      );
      const done = await requestIn(store(), "COMPLETED");
      assert.equal(
        await store().takeOverJobRequest(
          done.id,
          "x",
          new Date(Date.now() + 10 * LEASE_MS),
          LEASE_MS,
        ),
        undefined,
      );
    });

    void it("renews the leases of the owner's unfinished requests only", async () => {
      const mine = await requestIn(store(), "EXECUTING");
      const mineToo = await requestIn(store(), "READY");
      const finished = await requestIn(store(), "COMPLETED");
      const other = await claimOne(store(), await pendingRequest(store()), "engine-z");
      const now = new Date(Date.now() + 1000);
      assert.equal(await store().renewLeases(OWNER, now, 5000), 2);
      for (const id of [mine.id, mineToo.id]) {
        assert.equal(
          (await store().getJobRequest(id))?.leaseExpiresAt?.getTime(),
          now.getTime() + 5000,
        );
      }
      assert.deepEqual(await store().getJobRequest(finished.id), finished);
      assert.deepEqual(await store().getJobRequest(other.id), other);
      assert.equal(await store().renewLeases("nobody", now, 5000), 0);
    });
  });
}
