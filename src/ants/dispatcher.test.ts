import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ColonyError } from "../core/errors.ts";
import { ExecutorRegistry, type Executor } from "../core/executor.ts";
import type { TaskExecution } from "../core/job-request.ts";
import { AntRegistry } from "./ant-registry.ts";
import { Dispatcher } from "./dispatcher.ts";
import type { AntLink } from "./remote-ant-executor.ts";
import type { TaskDefinition } from "../core/job-definition.ts";
import { AGENT_PROTOCOL, taskDefinition } from "./task-request.ts";

function fakeShell(): Executor {
  const no = async (): Promise<never> => {
    throw new Error("not in this test");
  };
  return {
    methods: ["SHELL"],
    isInstalled: async () => true,
    start: no,
    run: no,
    wait: no,
    cancel: no,
    logStream: no,
    close: async () => undefined,
  };
}

const link = (sent: string[] = []): AntLink => ({
  remoteAddress: "test",
  send: (text) => sent.push(text),
  close: () => undefined,
});

let n = 0;
const execution = (): TaskExecution => ({ id: `x${++n}`, state: "READY" }) as TaskExecution;

/** Fills an ant of max_capacity 1 with a task of its own. */
async function occupy(ant: Executor, task: TaskDefinition): Promise<void> {
  await ant.start({
    executionId: `busy${++n}`,
    method: task.method,
    task,
    env: {},
    variables: {},
    unitDir: "/tmp/none",
  });
}

function setup(builtinTags: string[] = [], capacity?: number, reconnectGraceMs?: number) {
  const local = new ExecutorRegistry().register(fakeShell());
  const ants = new AntRegistry(reconnectGraceMs === undefined ? {} : { reconnectGraceMs });
  const builtin = { id: "b", tags: builtinTags, ...(capacity === undefined ? {} : { capacity }) };
  const logs: string[] = [];
  const dispatcher = new Dispatcher({ local, ants, builtin, log: (m) => logs.push(m) });
  return { local, ants, dispatcher, logs };
}

describe("dispatcher routing", () => {
  const signal = new AbortController().signal;

  it("runs untagged tasks on the built-in ant, and tagged ones only where every tag is", async () => {
    const { local, ants, dispatcher } = setup(["linux"]);
    const shell = local.get("SHELL");
    assert.equal(dispatcher.executorFor(taskDefinition("a"), execution(), signal), shell);
    assert.equal(
      dispatcher.executorFor(taskDefinition("b", { tags: ["linux"] }), execution(), signal),
      shell,
    );
    const gpu = ants.register({ ant_id: "g", tags: ["linux", "gpu"], methods: ["SHELL"] }, link());
    assert.equal(
      dispatcher.executorFor(taskDefinition("c", { tags: ["linux", "gpu"] }), execution(), signal),
      gpu,
    );
  });

  it("picks the least-loaded qualifying ant, the built-in one on a tie", () => {
    const { local, ants, dispatcher } = setup();
    const remote = ants.register({ ant_id: "r", tags: [], methods: ["SHELL"] }, link());
    const task = taskDefinition("t");
    assert.equal(dispatcher.executorFor(task, execution(), signal), local.get("SHELL"));
    assert.equal(dispatcher.executorFor(task, execution(), signal), remote, "built-in has 1");
  });

  it("among remote ants picks the least loaded; ties go round the ants in turn", async () => {
    const { ants, dispatcher } = setup();
    const task = taskDefinition("q", { method: "WEBSOCKET", tags: ["q"] });
    const ant = (id: string) =>
      ants.register({ ant_id: id, tags: ["q"], methods: ["WEBSOCKET"], max_capacity: 3 }, link());
    const [a, b, c] = [ant("a"), ant("b"), ant("c")];
    let n = 0;
    const load = (on: typeof a, count: number) =>
      Promise.all(
        Array.from({ length: count }, () =>
          on.start({
            executionId: `load-${++n}`,
            method: "WEBSOCKET",
            task,
            env: {},
            variables: {},
            unitDir: "/tmp/none",
          }),
        ),
      );
    await load(a, 2);
    await load(b, 1);
    await load(c, 1);
    assert.equal(dispatcher.executorFor(task, execution(), signal), b, "b and c have 1: b first");
    await load(b, 1);
    assert.equal(dispatcher.executorFor(task, execution(), signal), c, "c has 1, a and b 2");
    await load(c, 1);
    // All have 2: the scan goes on after the ant picked last (c), so a, then b.
    assert.equal(dispatcher.executorFor(task, execution(), signal), a, "all have 2: after c, a");
    await load(a, 1);
    assert.equal(dispatcher.executorFor(task, execution(), signal), b, "b and c have 2: b next");
    const [d, e] = [ant("d"), ant("e")];
    const picks = [];
    for (const _ of [1, 2]) {
      const picked = dispatcher.executorFor(task, execution(), signal) as typeof a;
      picks.push(picked.antId);
      await load(picked, 1);
    }
    assert.deepEqual(picks.sort(), [d.antId, e.antId], "two idle ants: one task each");
    // Idle again after each task (a reservation not used is released at the next turn):
    // the next task still goes to the next ant, not to the first one every time.
    const [f, g] = [ant("f"), ant("g")];
    for (const x of [a, b, c, d, e]) await load(x, 3 - x.load);
    const turns = [];
    for (const _ of [1, 2, 3, 4]) {
      turns.push((dispatcher.executorFor(task, execution(), signal) as typeof a).antId);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.deepEqual(turns, [f.antId, g.antId, f.antId, g.antId]);
  });

  it("holds the built-in ant to its capacity (max_parallel_tasks); remote ants add theirs", async () => {
    const { local, ants, dispatcher } = setup([], 1);
    const shell = local.get("SHELL");
    const task = taskDefinition("t");
    const first = execution();
    assert.equal(dispatcher.executorFor(task, first, signal), shell);
    const remote = ants.register(
      { ant_id: "r", tags: [], methods: ["SHELL"], max_capacity: 1 },
      link(),
    );
    assert.equal(dispatcher.executorFor(task, execution(), signal), remote, "built-in full");
    // The remote ant's one place is taken by that task now.
    const third = dispatcher.executorFor(task, execution(), signal);
    assert.ok(third instanceof Promise, "nobody has room: it waits");
    assert.equal(dispatcher.waiting().length, 1);
    dispatcher.finished(first.id); // the built-in ant's task ended
    assert.equal(await third, shell);
    assert.equal(dispatcher.builtinLoad, 1);
  });

  it("a task that waited for a full built-in ant says so when it times out", async () => {
    const { local, dispatcher } = setup([], 1);
    assert.equal(
      dispatcher.executorFor(taskDefinition("t"), execution(), signal),
      local.get("SHELL"),
    );
    await assert.rejects(
      dispatcher.executorFor(
        taskDefinition("t", { timeoutMs: 30 }),
        execution(),
        signal,
      ) as Promise<unknown>,
      /every ant that serves method SHELL is at its max_capacity: the built-in ant \(1\/1, max_parallel_tasks\)/,
    );
  });

  it("makes a task wait for an ant with room; abort ends the wait with undefined", async () => {
    const { ants, dispatcher } = setup();
    const task = taskDefinition("w", { method: "WEBSOCKET", tags: ["js"] });
    const waiting = dispatcher.executorFor(task, execution(), signal);
    assert.ok(waiting instanceof Promise);
    assert.equal(dispatcher.waiting().length, 1);
    const ant = ants.register({ ant_id: "js", tags: ["js"], methods: ["WEBSOCKET"] }, link());
    assert.equal(await waiting, ant);
    const abort = new AbortController();
    await occupy(ant, task);
    const second = dispatcher.executorFor(task, execution(), abort.signal);
    assert.ok(second instanceof Promise, "max_capacity 1: the next one waits");
    abort.abort();
    assert.equal(await second, undefined);
    assert.equal(dispatcher.waiting().length, 0);
  });

  it("ends every wait under an aborted signal, and only those, however many came before", async () => {
    const { ants, dispatcher } = setup();
    const task = taskDefinition("w", { method: "WEBSOCKET", tags: ["js"] });
    const mine = new AbortController();
    const other = new AbortController();
    // A wait under `mine` that an ant ends: the signal's listener stays for later waits.
    const served = dispatcher.executorFor(task, execution(), mine.signal);
    const ant = ants.register({ ant_id: "js", tags: ["js"], methods: ["WEBSOCKET"] }, link());
    assert.equal(await served, ant);
    await occupy(ant, task);
    const a = dispatcher.executorFor(task, execution(), mine.signal);
    const b = dispatcher.executorFor(task, execution(), other.signal);
    const c = dispatcher.executorFor(task, execution(), mine.signal);
    assert.equal(dispatcher.waitingCount, 3);
    mine.abort();
    assert.equal(await a, undefined);
    assert.equal(await c, undefined);
    assert.deepEqual([dispatcher.waitingCount, dispatcher.waiting().length], [1, 1]);
    other.abort();
    assert.equal(await b, undefined);
    assert.equal(dispatcher.waitingCount, 0);
  });

  it("counts as back-pressure only the waiting tasks some ant serves", async () => {
    const { ants, dispatcher } = setup();
    const task = (tag: string) => taskDefinition(tag, { method: "WEBSOCKET", tags: [tag] });
    const abort = new AbortController();
    const wait = (tag: string) => dispatcher.executorFor(task(tag), execution(), abort.signal);
    void wait("gpu"); // no ant serves gpu
    assert.equal(dispatcher.waitingCount, 0);
    const js = ants.register({ ant_id: "js", tags: ["js"], methods: ["WEBSOCKET"] }, link());
    await occupy(js, task("js"));
    void wait("js"); // served, but the ant is full (max_capacity 1)
    assert.deepEqual([dispatcher.waiting().length, dispatcher.waitingCount], [2, 1]);
    assert.deepEqual(
      dispatcher.waiting().map((w) => [w.taskType, w.reason]),
      [
        ["gpu", "no_ant"],
        ["js", "busy"],
      ],
    );
    // A gpu ant connects and is busy at once: now both wait for an ant that is there.
    const gpuLink = link();
    const gpu = ants.register({ ant_id: "gpu", tags: ["gpu"], methods: ["WEBSOCKET"] }, gpuLink);
    assert.equal(dispatcher.waiting().length, 1, "the gpu task went to the new ant");
    void wait("gpu");
    assert.equal(dispatcher.waitingCount, 2);
    ants.disconnect(gpu, gpuLink, "test");
    assert.equal(dispatcher.waitingCount, 1, "gone again: the gpu task is not back-pressure");
    abort.abort();
    await new Promise((r) => setImmediate(r));
    assert.equal(dispatcher.waitingCount, 0);
  });

  it("fails a task that waited its whole timeout with COLONY_NO_ANT, saying why", async () => {
    const { ants, dispatcher } = setup();
    ants.register({ ant_id: "py", tags: ["python"], methods: ["WEBSOCKET"] }, link());
    const task = taskDefinition("w", { method: "WEBSOCKET", tags: ["js"], timeoutMs: 50 });
    await assert.rejects(
      dispatcher.executorFor(task, execution(), signal) as Promise<unknown>,
      (error: unknown) => {
        assert.ok(error instanceof ColonyError);
        assert.equal(error.code, "COLONY_NO_ANT");
        assert.match(
          error.message,
          /none of the 1 connected ant\(s\) serves method WEBSOCKET and tags js: py/,
        );
        return true;
      },
    );
  });

  it("without remote ants (colony run), tags do not restrict anything", () => {
    const local = new ExecutorRegistry().register(fakeShell());
    const dispatcher = new Dispatcher({ local, builtin: { id: "b", tags: [] } });
    const task = taskDefinition("t", { tags: ["anything"] });
    assert.equal(dispatcher.executorFor(task, execution(), signal), local.get("SHELL"));
    assert.equal(
      dispatcher.executorFor(taskDefinition("w", { method: "WEBSOCKET" }), execution(), signal),
      undefined,
    );
  });

  it("waiting tasks get ants oldest first; a task for other ants is not held up by them", async () => {
    const { ants, dispatcher } = setup();
    const x = taskDefinition("x", { method: "WEBSOCKET", tags: ["x"] });
    const a = ants.register({ ant_id: "a", tags: ["x"], methods: ["WEBSOCKET"] }, link());
    assert.equal(dispatcher.executorFor(x, execution(), signal), a);
    const order: string[] = [];
    const second = dispatcher.executorFor(x, execution(), signal) as Promise<unknown>;
    const third = dispatcher.executorFor(
      taskDefinition("x2", { method: "WEBSOCKET", tags: ["x"] }),
      execution(),
      signal,
    ) as Promise<unknown>;
    assert.ok(second instanceof Promise && third instanceof Promise, "both wait");
    void second.then(() => order.push("second"));
    void third.then(() => order.push("third"));
    const y = ants.register({ ant_id: "y", tags: ["y"], methods: ["WEBSOCKET"] }, link());
    assert.equal(
      dispatcher.executorFor(
        taskDefinition("y", { method: "WEBSOCKET", tags: ["y"] }),
        execution(),
        signal,
      ),
      y,
      "an ant with room for it takes it at once",
    );
    const b = ants.register({ ant_id: "b", tags: ["x"], methods: ["WEBSOCKET"] }, link());
    assert.equal(await second, b, "the oldest waiter gets the ant that came");
    assert.deepEqual(order, ["second"], "the newer one still waits");
    assert.deepEqual(
      dispatcher.waiting().map((w) => w.taskType),
      ["x2"],
    );
    // a's slot was only reserved (no task was started on it): it frees at the next turn.
    assert.equal(await third, a);
    assert.deepEqual(order, ["second", "third"]);
  });

  it("defers a job whose first task no ant serves: 1 s, doubling up to 30 s, none once one does", () => {
    const { ants, dispatcher } = setup();
    const gpu = taskDefinition("train", { method: "WEBSOCKET", tags: ["gpu"] });
    const delays = [];
    for (let i = 0; i < 7; i++) {
      const d = dispatcher.deferral(7, gpu)!;
      assert.equal(d.errorCode, "COLONY_NO_ANT");
      delays.push(d.delayMs);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    assert.match(dispatcher.deferral(7, gpu)!.errorMessage, /tried 8 time\(s\).*tags gpu/);
    assert.deepEqual(
      dispatcher.waiting().map((w) => [w.jobRequestId, w.executionId, w.reason]),
      [[7, undefined, "no_ant"]],
    );
    dispatcher.deferral(5, gpu);
    dispatcher.deferral(6, gpu);
    assert.deepEqual(
      dispatcher.waiting(2).map((w) => w.jobRequestId),
      [7, 5],
      "the oldest first, up to the limit",
    );
    assert.deepEqual(dispatcher.waitingCounts(), { busy: 0, noAnt: 3, reconnect: 0 });
    assert.equal(
      dispatcher.deferral(8, taskDefinition("t")),
      undefined,
      "the built-in ant serves it",
    );
    const ant = ants.register({ ant_id: "g", tags: ["gpu"], methods: ["WEBSOCKET"] }, link());
    assert.equal(dispatcher.deferral(7, gpu), undefined, "an ant serves it now");
    assert.equal(dispatcher.executorFor(gpu, { ...execution(), jobRequestId: 7 }, signal), ant);
    assert.deepEqual(
      dispatcher.waiting().map((w) => w.jobRequestId),
      [5, 6],
      "7 started: no longer listed",
    );
  });

  it("a deferred task's timeout counts from its first deferral", async () => {
    const { dispatcher } = setup();
    const gpu = taskDefinition("train", { method: "WEBSOCKET", tags: ["gpu"], timeoutMs: 60 });
    assert.ok(dispatcher.deferral(9, gpu)!.delayMs <= 60, "never past the timeout");
    await new Promise((r) => setTimeout(r, 70));
    assert.equal(dispatcher.deferral(9, gpu), undefined, "its time is up: it starts");
    const started = Date.now();
    await assert.rejects(
      dispatcher.executorFor(gpu, { ...execution(), jobRequestId: 9 }, signal) as Promise<unknown>,
      /COLONY_NO_ANT|no ant took task train within its timeout/,
    );
    assert.ok(Date.now() - started < 50, "at once, not after another timeout");
  });

  it("release ends a wait no ant serves (not one for a busy ant); the wait's time still counts", async () => {
    const { ants, dispatcher } = setup();
    const gpu = taskDefinition("train", { method: "WEBSOCKET", tags: ["gpu"], timeoutMs: 600 });
    const waited = { ...execution(), jobRequestId: 11 };
    const waiting = dispatcher.executorFor(gpu, waited, signal);
    assert.ok(waiting instanceof Promise);
    const js = taskDefinition("js", { method: "WEBSOCKET", tags: ["js"] });
    ants.register({ ant_id: "js", tags: ["js"], methods: ["WEBSOCKET"] }, link());
    const busyExecution = execution();
    assert.ok(!(dispatcher.executorFor(js, execution(), signal) instanceof Promise));
    const busy = dispatcher.executorFor(js, busyExecution, signal);
    assert.ok(busy instanceof Promise, "max_capacity 1: it waits for the busy ant");
    assert.equal(dispatcher.release(busyExecution.id), false, "a busy ant's waiter stays");
    assert.equal(dispatcher.release("unknown"), false);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(dispatcher.release(waited.id), true);
    assert.equal(await waiting, undefined);
    assert.ok(dispatcher.deferral(11, gpu)!.delayMs <= 300, "its 300 ms of waiting count");
    const again = Date.now();
    await assert.rejects(
      dispatcher.executorFor(gpu, waited, signal) as Promise<unknown>,
      /no ant took task train within its timeout/,
    );
    assert.ok(Date.now() - again < 550, "waiting again, it fails after what was left");
  });

  it("defers nothing without remote ants (colony run)", () => {
    const local = new ExecutorRegistry().register(fakeShell());
    const dispatcher = new Dispatcher({ local, builtin: { id: "b", tags: [] } });
    const gpu = taskDefinition("train", { method: "WEBSOCKET", tags: ["gpu"] });
    assert.equal(dispatcher.deferral(1, gpu), undefined);
  });
});

describe("dispatcher after a server restart: tasks an earlier process may have sent", () => {
  const signal = new AbortController().signal;
  const task = taskDefinition("t", { method: "WEBSOCKET", tags: ["keep"] });
  /** An execution of task t of job 7 recorded READY by the server process before. */
  const sent = (): TaskExecution => ({ ...execution(), taskType: "t", jobRequestId: 7 });
  const agent = (ants: AntRegistry, running: string[], sent: string[] = []) =>
    ants.register(
      {
        ant_id: "keeper",
        tags: ["keep"],
        methods: ["WEBSOCKET"],
        protocol: AGENT_PROTOCOL,
        session: "s-keeper",
        max_capacity: 4,
        running,
      },
      link(sent),
    );
  const other = (ants: AntRegistry, sent: string[] = []) =>
    ants.register({ ant_id: "other", tags: ["keep"], methods: ["WEBSOCKET"] }, link(sent));
  const request = (id: string) => ({
    executionId: id,
    method: "WEBSOCKET" as const,
    task,
    env: {},
    variables: {},
    unitDir: `/tmp/colony-no-such-unit-${id}`,
    mayHaveStarted: true,
  });
  const startOn = (ant: Executor, id: string) => ant.start(request(id));

  it("waits for the agent that holds it, not an idle ant, and it runs on there without a resend", async () => {
    const { ants, dispatcher, logs } = setup([], undefined, 5000);
    const otherSent: string[] = [];
    other(ants, otherSent);
    const x = sent();
    const found = dispatcher.executorFor(task, x, signal, true);
    assert.ok(found instanceof Promise, "it waits rather than routing at once");
    let settled = false;
    void found.then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(settled, false, "no agent holds it yet: still waiting, the idle ant unused");
    // GET /api/ants lists it meanwhile, saying why it waits.
    assert.deepEqual(
      dispatcher.waiting().map((w) => [w.executionId, w.taskType, w.tags, w.reason, w.leftPending]),
      [[x.id, "t", ["keep"], "reconnect", false]],
    );
    assert.deepEqual(dispatcher.waitingCounts(), { busy: 0, noAnt: 0, reconnect: 1 });
    const frames: string[] = [];
    const keeper = agent(ants, [x.id], frames);
    assert.equal(await found, keeper);
    assert.deepEqual(dispatcher.waiting(), [], "taken back: no longer listed");
    assert.deepEqual(dispatcher.waitingCounts(), { busy: 0, noAnt: 0, reconnect: 0 });
    frames.length = 0;
    await startOn(keeper, x.id);
    assert.deepEqual(
      frames.map((t) => JSON.parse(t) as unknown),
      [{ type: "registered", ant_id: "keeper", resume: { [x.id]: 0 } }],
      "told where its output resumes; no second TaskRequest",
    );
    assert.deepEqual(otherSent, []);
    assert.deepEqual(keeper.runningIds(), [x.id]);
    assert.equal(logs.length, 2, logs.join("\n"));
    assert.match(
      logs[0]!,
      new RegExp(`task t \\(${x.id}\\) of job 7: .*waiting up to \\S+ for an agent`),
    );
    assert.match(logs[1]!, /taken back from ant keeper, which runs it/);
  });

  it("goes to an agent already back at once, and only once (a second start is sent as new)", async () => {
    const { ants, dispatcher } = setup([], undefined, 5000);
    const x = sent();
    const frames: string[] = [];
    const keeper = agent(ants, [x.id], frames);
    other(ants);
    assert.equal(await dispatcher.executorFor(task, x, signal, true), keeper);
    await startOn(keeper, x.id);
    assert.equal(keeper.holdsUnclaimed(x.id), false, "taken back: no longer unclaimed");
    assert.equal(ants.holderOf(x.id), keeper, "it runs there");
    const y = sent();
    frames.length = 0;
    await startOn(keeper, y.id); // not held: sent as a TaskRequest
    assert.equal(
      (JSON.parse(frames[0]!) as { task_execution_id?: string }).task_execution_id,
      y.id,
    );
  });

  it("driven again here after a store failure, it goes back to the ant it was sent to", async () => {
    const { ants, dispatcher } = setup([], undefined, 5000);
    const first = other(ants);
    const x = sent();
    await startOn(first, x.id);
    const idle = ants.register({ ant_id: "idle", tags: ["keep"], methods: ["WEBSOCKET"] }, link());
    assert.equal(await dispatcher.executorFor(task, x, signal, true), first);
    await assert.rejects(startOn(first, x.id), (error: unknown) => {
      const e = error as { code?: string; handle?: { ant_id?: string } };
      return e.code === "COLONY_EXECUTION_EXISTS" && e.handle?.ant_id === "other";
    });
    assert.equal(idle.load, 0);
    // Once the ant is closed (the server stops), a start is refused as such.
    await first.close();
    await assert.rejects(startOn(first, sent().id), { code: "COLONY_EXECUTOR_CLOSED" });
  });

  it("is routed as any task when no agent claims it within the reconnect grace", async () => {
    const { ants, dispatcher, logs } = setup([], undefined, 150);
    const routed: Executor[] = [other(ants), agent(ants, ["someone-else"])];
    const began = Date.now();
    assert.ok(routed.includes((await dispatcher.executorFor(task, sent(), signal, true))!));
    assert.ok(Date.now() - began >= 140, "it waited out the grace");
    assert.match(logs.at(-1)!, /no agent holds it; routed as a new task/);
    assert.deepEqual(dispatcher.waitingCounts().reconnect, 0, "no longer listed as waiting");
    // The grace counts from the registry's start: after it, nothing waits.
    const after = Date.now();
    assert.ok(routed.includes((await dispatcher.executorFor(task, sent(), signal, true))!));
    assert.ok(Date.now() - after < 50);
  });

  it("cancelled meanwhile (adoptOnly): the agent that holds it is found and told to stop; no other ant starts it", async () => {
    const { ants, dispatcher } = setup([], undefined, 5000);
    const x = sent();
    const found = dispatcher.holderFor(x);
    const frames: string[] = [];
    const keeper = agent(ants, [x.id], frames);
    assert.equal(await found, keeper);
    frames.length = 0;
    await keeper.start({ ...request(x.id), adoptOnly: true });
    await keeper.cancel(x.id);
    assert.deepEqual(
      frames.map((t) => (JSON.parse(t) as { type: string }).type),
      ["registered", "cancel"],
    );
    // An ant that does not hold it starts nothing.
    const otherSent: string[] = [];
    const idle = other(ants, otherSent);
    const y = sent();
    await assert.rejects(idle.start({ ...request(y.id), adoptOnly: true }), {
      code: "COLONY_NOT_STARTED",
    });
    assert.deepEqual(otherSent, []);
    assert.equal(idle.load, 0);
    await assert.rejects(idle.wait(y.id), { code: "COLONY_UNKNOWN_EXECUTION" });
  });

  it("deferred before its agent came back, it is listed once, as waiting for the agent, and its time still counts", async () => {
    const { ants, dispatcher } = setup([], undefined, 600);
    const timed = taskDefinition("t", { method: "WEBSOCKET", tags: ["keep"], timeoutMs: 400 });
    const x = sent();
    // Right after the restart no ant serves it: the job is handed back (left PENDING).
    assert.ok(dispatcher.deferral(x.jobRequestId, timed, { executionId: x.id }));
    await new Promise((r) => setTimeout(r, 300));
    const began = Date.now();
    const found = Promise.resolve(dispatcher.executorFor(timed, x, signal, true));
    const outcome = found.then(
      () => assert.fail("an ant was found"),
      (e: Error) => e,
    );
    assert.deepEqual(
      dispatcher.waiting().map((w) => [w.executionId, w.reason, w.leftPending]),
      [[x.id, "reconnect", false]],
      "no longer listed as left PENDING",
    );
    // No agent claims it within the grace (~300 ms left) and no ant serves it: its timeout,
    // counted from the first deferral, is over then, so it fails at once, not 400 ms later.
    assert.match((await outcome).message, /no ant took task t within its timeout/);
    const took = Date.now() - began;
    assert.ok(took >= 250 && took < 550, `it failed ${took} ms after the lookup`);
    await ants.close();
  });

  it("a cancel ends the wait with undefined; the server stopping ends every wait", async () => {
    const { ants, dispatcher } = setup([], undefined, 60_000);
    const stop = new AbortController();
    const cancelled = dispatcher.executorFor(task, sent(), stop.signal, true);
    stop.abort();
    assert.equal(await cancelled, undefined);
    assert.equal(dispatcher.waitingCounts().reconnect, 0, "a cancelled wait is not listed");
    const waiting = dispatcher.executorFor(task, sent(), signal, true);
    dispatcher.close();
    await assert.rejects(Promise.resolve(waiting), { code: "COLONY_EXECUTOR_CLOSED" });
    assert.equal(dispatcher.waitingCounts().reconnect, 0);
    const holderWait = ants.awaitHolder("x", signal);
    await ants.close();
    assert.equal(await holderWait, undefined, "the registry closing ends its waits");
  });
});
