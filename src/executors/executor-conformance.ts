/**
 * The executor conformance suite (SPEC section 4, seed 001): every executor runs it
 * from its own test file with requests for its method, e.g.
 *
 *   executorConformance("shell (perl launcher)", async () => ({ executor, requests, teardown }));
 *
 * It checks the errors the seed names (start of an existing execution; wait and cancel
 * of unknown or finished ones), exit codes, cancel of a whole process tree, and
 * logStream with and without tail and follow. Setup resolving undefined skips the
 * suite (the executor cannot run here: no Docker engine, say).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, describe, it, type TestContext } from "node:test";
import { ColonyError, ExecutionExistsError } from "../core/errors.ts";
import {
  EXECUTION_EXISTS,
  NOT_STARTED,
  UNKNOWN_EXECUTION,
  type ExecutionRequest,
  type Executor,
} from "../core/executor.ts";

/** Builds requests for the method under test; each id is used once. */
export interface ConformanceRequests {
  /** Prints the line `quickLine(id)` and exits 0. */
  quick(id: string): ExecutionRequest;
  /** Exits with `code`. */
  failing(id: string, code: number): ExecutionRequest;
  /**
   * Runs until cancelled, with a grandchild process (e.g. `sleep 300 & ...; wait`), and
   * prints the line `grandchild <pid>` once that runs.
   */
  long(id: string): ExecutionRequest;
  /** Prints `line 1` ... `line <lines>` over about a second, then exits 0. */
  chatty(id: string, lines: number): ExecutionRequest;
  /** The printed grandchild pid is a process on this machine: check that cancel ended it. */
  localProcesses?: boolean;
  /**
   * The exit code a `failing(id, code)` execution reports when the method cannot exit with
   * any code it likes (HTTP: the status code the server answered). Default: `code`.
   */
  failingExitCode?(code: number): number;
}

export interface ConformanceSetup {
  executor: Executor;
  requests: ConformanceRequests;
  teardown(): Promise<void>;
}

export function quickLine(id: string): string {
  return `conformance quick ${id}`;
}

export function chattyOutput(lines: number): string {
  return Array.from({ length: lines }, (_, i) => `line ${i + 1}\n`).join("");
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Follows the output until it matches, then closes the stream. */
export async function readUntil(
  executor: Executor,
  executionId: string,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<RegExpMatchArray> {
  const stream = await executor.logStream({ executionId, follow: true });
  const timer = setTimeout(
    () => stream.destroy(new Error(`no output matching ${pattern} within ${timeoutMs} ms`)),
    timeoutMs,
  );
  let text = "";
  try {
    for await (const chunk of stream) {
      text += (chunk as Buffer).toString("utf8");
      const m = text.match(pattern);
      if (m) return m;
    }
    throw new Error(`the output ended without matching ${pattern}: ${JSON.stringify(text)}`);
  } finally {
    clearTimeout(timer);
    stream.destroy();
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ColonyError, `expected a ColonyError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

/**
 * `adopts`: the executor honours ExecutionRequest.adoptOnly (Executor.adopts), which the
 * suite then checks too.
 */
export function executorConformance(
  name: string,
  setup: () => Promise<ConformanceSetup | undefined>,
  options: { adopts?: boolean } = {},
): void {
  describe(`executor conformance: ${name}`, () => {
    let ctx: ConformanceSetup | undefined;
    const prefix = `conf-${randomBytes(3).toString("hex")}`;
    let n = 0;
    const newId = (what: string) => `${prefix}-${what}-${++n}`;

    before(async () => {
      ctx = await setup();
    });
    after(async () => {
      await ctx?.teardown();
    });

    /** The set-up suite, or undefined after marking the test skipped. */
    function need(t: TestContext): ConformanceSetup | undefined {
      if (!ctx) t.skip(`${name} cannot run here (its setup returned undefined)`);
      return ctx;
    }

    const opts = { timeout: 60_000 };

    it("refuses to start an execution id twice (EXECUTION_EXISTS)", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("twice");
      await c.executor.start(c.requests.quick(id));
      await rejectsWith(c.executor.start(c.requests.quick(id)), EXECUTION_EXISTS);
      assert.equal((await c.executor.wait(id)).exitCode, 0);
      await rejectsWith(c.executor.start(c.requests.quick(id)), EXECUTION_EXISTS);
    });

    if (options.adopts) {
      it(
        "with adoptOnly, starts nothing no earlier process started (NOT_STARTED)",
        opts,
        async (t) => {
          const c = need(t);
          if (!c) return;
          assert.equal(c.executor.adopts, true, "it says it honours adoptOnly");
          const id = newId("adopt-only");
          const request = c.requests.quick(id);
          await rejectsWith(
            c.executor.start({ ...request, mayHaveStarted: true, adoptOnly: true }),
            NOT_STARTED,
          );
          await rejectsWith(c.executor.wait(id), UNKNOWN_EXECUTION);
          // Nothing ran, and nothing holds the id: it starts as new.
          await c.executor.start(request);
          assert.equal((await c.executor.wait(id)).exitCode, 0);
          const output = await readAll(await c.executor.logStream({ executionId: id }));
          assert.equal(output, `${quickLine(id)}\n`, "its output once: it ran once");
        },
      );
    }

    it(
      "answers UNKNOWN_EXECUTION for wait, cancel and logStream of an unknown id",
      opts,
      async (t) => {
        const c = need(t);
        if (!c) return;
        const id = newId("never-started");
        await rejectsWith(c.executor.wait(id), UNKNOWN_EXECUTION);
        await rejectsWith(c.executor.cancel(id), UNKNOWN_EXECUTION);
        await rejectsWith(c.executor.logStream({ executionId: id }), UNKNOWN_EXECUTION);
      },
    );

    it("answers UNKNOWN_EXECUTION for wait and cancel of a finished execution", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("finished");
      const result = await c.executor.run(c.requests.quick(id));
      assert.equal(result.exitCode, 0);
      await rejectsWith(c.executor.wait(id), UNKNOWN_EXECUTION);
      await rejectsWith(c.executor.cancel(id), UNKNOWN_EXECUTION);
    });

    it("delivers the result to every waiter of a running execution", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("waiters");
      await c.executor.start(c.requests.chatty(id, 3));
      const results = await Promise.all([c.executor.wait(id), c.executor.wait(id)]);
      for (const r of results) assert.deepEqual([r.exitCode, r.killed], [0, false]);
      await rejectsWith(c.executor.wait(id), UNKNOWN_EXECUTION);
    });

    it("run resolves with exit code 0, or the failing code, and killed false", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const ok = await c.executor.run(c.requests.quick(newId("ok")));
      assert.equal(ok.exitCode, 0);
      assert.equal(ok.killed, false);
      const failed = await c.executor.run(c.requests.failing(newId("fail"), 3));
      assert.equal(failed.exitCode, c.requests.failingExitCode?.(3) ?? 3);
      assert.equal(failed.killed, false);
    });

    it("cancel stops the whole process tree and the result says killed", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("long");
      await c.executor.start(c.requests.long(id));
      let grandchild: number | undefined;
      try {
        const m = await readUntil(c.executor, id, /grandchild (\d+)\n/);
        grandchild = Number(m[1]);
      } finally {
        await c.executor.cancel(id);
      }
      const result = await c.executor.wait(id);
      assert.equal(result.killed, true);
      assert.notEqual(result.exitCode, 0);
      if (c.requests.localProcesses) {
        assert.ok(grandchild !== undefined);
        assert.ok(await waitGone(grandchild, 5000), `grandchild ${grandchild} still runs`);
      }
      await rejectsWith(c.executor.cancel(id), UNKNOWN_EXECUTION);
    });

    it("logStream without tail returns the whole output", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("whole");
      assert.equal((await c.executor.run(c.requests.chatty(id, 5))).exitCode, 0);
      assert.equal(await readAll(await c.executor.logStream({ executionId: id })), chattyOutput(5));
      const q = newId("quick");
      await c.executor.run(c.requests.quick(q));
      assert.equal(
        await readAll(await c.executor.logStream({ executionId: q })),
        `${quickLine(q)}\n`,
      );
    });

    it("logStream with tail returns only output produced after the call", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("tail");
      await c.executor.start(c.requests.chatty(id, 20));
      await readUntil(c.executor, id, /line 3\n/);
      const stream = await c.executor.logStream({ executionId: id, tail: true, follow: true });
      const text = await readAll(stream);
      assert.equal((await c.executor.wait(id)).exitCode, 0);
      const numbers = text
        .trimEnd()
        .split("\n")
        .map((l) => Number(/^line (\d+)$/.exec(l)?.[1]));
      assert.ok(numbers.length > 0 && (numbers[0] ?? 0) > 3, `tail started too early: ${text}`);
      assert.equal(text, chattyOutput(20).slice(chattyOutput((numbers[0] ?? 1) - 1).length));
    });

    it("logStream with follow streams until the execution ends", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const id = newId("follow");
      await c.executor.start(c.requests.chatty(id, 10));
      const stream = await c.executor.logStream({ executionId: id, follow: true });
      const [text, result] = await Promise.all([readAll(stream), c.executor.wait(id)]);
      assert.equal(result.exitCode, 0);
      assert.equal(text, chattyOutput(10));
    });

    it("runs 20 executions concurrently, each with its own output", opts, async (t) => {
      const c = need(t);
      if (!c) return;
      const ids = Array.from({ length: 20 }, () => newId("many"));
      const results = await Promise.all(ids.map((id) => c.executor.run(c.requests.quick(id))));
      for (const r of results) assert.deepEqual([r.exitCode, r.killed], [0, false]);
      for (const id of ids) {
        assert.equal(
          await readAll(await c.executor.logStream({ executionId: id })),
          `${quickLine(id)}\n`,
        );
      }
    });
  });
}

/**
 * Asserts that a start with `mayHaveStarted` found the work an earlier colony process
 * started (an ExecutionExistsError, whose handle it answers) instead of starting it again
 * (`again` says what starting it would have done).
 */
export async function followedNotStarted(
  start: Promise<unknown>,
  again: string,
): Promise<ExecutionExistsError> {
  const error = await start.then(
    () => assert.fail(again),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ExecutionExistsError, String(error));
  return error;
}
