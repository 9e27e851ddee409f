/**
 * The MESSAGING executor against a real Redis (skipped with a reason when none runs;
 * scripts/test-services.sh starts one): the wire format of SPEC section 6, duplicates
 * and malformed replies ignored, EXECUTING re-sent, a worker dying before its ack, and
 * the timeout taking the request back.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { redis } from "../../../test/support/services.ts";
import { followedNotStarted } from "../executor-conformance.ts";
import type { ExecutionRequest, Executor } from "../../core/executor.ts";
import { taskDefinition, type TaskRequest } from "../../ants/task-request.ts";
import { startMessagingWorker } from "../../worker/messaging-worker.ts";
import { createMessagingExecutor, WORKER_GROUP } from "./messaging-executor.ts";

const service = await redis();

describe("messaging executor (real Redis)", { skip: service.url ? false : service.reason }, () => {
  let root: string;
  let executor: Executor;
  let r: Redis;
  const keys: string[] = [];
  let n = 0;

  function queues(): { req: string; rep: string } {
    const tag = randomBytes(4).toString("hex");
    const q = { req: `colony-test-req-${tag}`, rep: `colony-test-rep-${tag}` };
    keys.push(q.req, q.rep);
    return q;
  }

  function request(q: { req: string; rep: string }, timeoutMs?: number): ExecutionRequest {
    const id = `msg${++n}`;
    return {
      executionId: id,
      method: "MESSAGING",
      task: taskDefinition("trigger", {
        method: "MESSAGING",
        messagingRequestQueue: q.req,
        messagingReplyQueue: q.rep,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      }),
      env: {},
      variables: { who: { name: "who", value: "tests", secret: false } },
      unitDir: join(root, "units", id),
      jobRequestId: 7,
      jobType: "messaging-job",
    };
  }

  /** `promise`, or a failure saying what did not come within 5 s. */
  async function within<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not come within 5 s`)), 5000);
    });
    try {
      return await Promise.race([promise, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads one request as a worker named `consumer` would, without acking it. */
  async function take(q: string, consumer: string): Promise<[string, TaskRequest]> {
    for (;;) {
      const got = (await r.xreadgroup(
        "GROUP",
        WORKER_GROUP,
        consumer,
        "COUNT",
        1,
        "BLOCK",
        2000,
        "STREAMS",
        q,
        ">",
      )) as [string, [string, string[]][]][] | null;
      const entry = got?.[0]?.[1][0];
      if (entry) {
        assert.equal(entry[1][0], "payload");
        return [entry[0], JSON.parse(entry[1][1]!) as TaskRequest];
      }
    }
  }

  /**
   * Takes the next request and replies COMPLETED with `context`, as a worker does; with
   * `sameId`, the reply's stream id is the request's (as a reply sent within the same
   * millisecond gets).
   */
  async function answerOne(
    q: { req: string; rep: string },
    context: Record<string, unknown>,
    sameId = false,
  ) {
    const [entry, task] = await take(q.req, "answers");
    const reply = {
      task_execution_id: task.task_execution_id,
      co_relation_id: task.co_relation_id,
      task_retry: task.task_retry,
      status: "COMPLETED",
      task_context: context,
    };
    await r.xadd(q.rep, sameId ? entry : "*", "payload", JSON.stringify(reply));
    await r.xack(q.req, WORKER_GROUP, entry);
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "colony-msg-"));
    executor = createMessagingExecutor({ redisUrl: service.url!, pollDelayMs: 100 });
    r = new Redis(service.url!);
  });
  after(async () => {
    await executor.close();
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
    await rm(root, { recursive: true, force: true });
  });

  it("sends the TaskRequest as `payload` to the request stream and completes with the worker's reply", async () => {
    const q = queues();
    const worker = await startMessagingWorker({
      redisUrl: service.url!,
      requestQueue: q.req,
      replyQueue: q.rep,
      handle: (task) => ({ task_context: { key1: "value1", who: task.variables.who?.value } }),
    });
    try {
      const result = await executor.run(request(q));
      assert.equal(result.status, "COMPLETED");
      assert.deepEqual(result.context, { key1: "value1", who: "tests" });
      const groups = (await r.xinfo("GROUPS", q.req)) as unknown[][];
      assert.ok(
        groups.some((g) => g.includes(WORKER_GROUP)),
        "colony created the group",
      );
    } finally {
      await worker.close();
    }
  });

  it("ignores malformed, unknown and duplicate replies", async () => {
    const q = queues();
    const req = request(q);
    await executor.start(req);
    const [id, task] = await take(q.req, "raw");
    assert.equal(task.task_execution_id, req.executionId);
    assert.equal(task.job_type, "messaging-job");
    await r.xadd(q.rep, "*", "payload", "{not json");
    await r.xadd(q.rep, "*", "other", "field");
    await r.xadd(q.rep, "*", "payload", JSON.stringify({ ...task, status: "DONE?" }));
    await r.xadd(
      q.rep,
      "*",
      "payload",
      JSON.stringify({ ...task, task_execution_id: "nope", status: "FAILED" }),
    );
    await r.xadd(
      q.rep,
      "*",
      "payload",
      JSON.stringify({ ...task, status: "COMPLETED", task_context: { first: true } }),
    );
    await r.xadd(q.rep, "*", "payload", JSON.stringify({ ...task, status: "FAILED" }));
    await r.xack(q.req, WORKER_GROUP, id);
    const result = await executor.wait(req.executionId);
    assert.equal(result.status, "COMPLETED");
    assert.deepEqual(result.context, { first: true });
  });

  it("sends the request again with task_retry + 1 after an EXECUTING reply", async () => {
    const q = queues();
    const req = request(q);
    await executor.start(req);
    const [, first] = await take(q.req, "poller");
    await r.xadd(q.rep, "*", "payload", JSON.stringify({ ...first, status: "EXECUTING" }));
    const [, second] = await take(q.req, "poller");
    assert.equal(second.task_retry, first.task_retry + 1);
    await r.xadd(q.rep, "*", "payload", JSON.stringify({ ...second, status: "COMPLETED" }));
    assert.equal((await executor.wait(req.executionId)).status, "COMPLETED");
  });

  it("loses nothing when a worker dies before acking: another consumer takes it over", async () => {
    const q = queues();
    const req = request(q);
    await executor.start(req);
    await take(q.req, "dies-before-ack"); // read, never acked
    const worker = await startMessagingWorker({
      redisUrl: service.url!,
      requestQueue: q.req,
      replyQueue: q.rep,
      claimIdleMs: 200,
      handle: () => ({ task_context: { rescued: true } }),
    });
    try {
      const result = await executor.wait(req.executionId);
      assert.deepEqual(result.context, { rescued: true });
    } finally {
      await worker.close();
    }
  });

  it("cancel (the timeout) takes back a request no worker took", async () => {
    const q = queues();
    const req = request(q, 500);
    await executor.start(req);
    assert.equal(await r.xlen(q.req), 1);
    await executor.cancel(req.executionId);
    const result = await executor.wait(req.executionId);
    assert.equal(result.killed, true);
    assert.equal(await r.xlen(q.req), 0);
  });

  it("after a restart, attach takes the reply a worker sent while colony was away", async () => {
    const q = queues();
    const req = request(q);
    const first = createMessagingExecutor({ redisUrl: service.url!, pollDelayMs: 100 });
    const handle = await first.start(req);
    await first.close(); // colony goes away; the request waits in the stream
    await answerOne(q, { away: true }, true);
    const second = createMessagingExecutor({ redisUrl: service.url!, pollDelayMs: 100 });
    try {
      assert.equal(await second.attach!(req, handle), true);
      const result = await within(second.wait(req.executionId), "the reply");
      assert.deepEqual(result.context, { away: true });
    } finally {
      await second.close();
    }
  });

  it("a start with mayHaveStarted awaits the request an earlier colony sent, not sending it again", async () => {
    const q = queues();
    const req = request(q);
    const first = createMessagingExecutor({ redisUrl: service.url!, pollDelayMs: 100 });
    const sent = await first.start(req);
    await first.close(); // died before the engine recorded the start: the task is READY
    await answerOne(q, { once: true }, true);
    const second = createMessagingExecutor({ redisUrl: service.url!, pollDelayMs: 100 });
    try {
      const error = await followedNotStarted(
        second.start({ ...req, mayHaveStarted: true }),
        "sent the request again",
      );
      assert.equal(error.handle?.["entry_id"], sent["entry_id"]);
      assert.equal(await r.xlen(q.req), 1, "one request in the queue");
      const result = await within(second.wait(req.executionId), "the reply");
      assert.deepEqual(result.context, { once: true });
      // Not found (never sent), with adoptOnly (its job was cancelled): nothing is sent.
      const fresh = request(q);
      await assert.rejects(second.start({ ...fresh, mayHaveStarted: true, adoptOnly: true }), {
        code: "COLONY_NOT_STARTED",
      });
      assert.equal(await r.xlen(q.req), 1, "nothing sent");
      // Not found (never sent): it is sent.
      await second.start({ ...fresh, mayHaveStarted: true });
      assert.equal(await r.xlen(q.req), 2);
      await answerOne(q, { fresh: true });
      assert.deepEqual((await second.wait(fresh.executionId)).context, { fresh: true });
    } finally {
      await second.close();
    }
  });
});
