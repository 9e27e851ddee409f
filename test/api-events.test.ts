/**
 * GET /api/events against a real server with real processes: typed job and task
 * events with ids, resuming with Last-Event-ID exactly where a client left off, `reset`
 * for an id the server cannot resume from, the `types` filter, auth, and a publish from
 * a feature (ant:*) reaching subscribers.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, it } from "node:test";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { http, testConfig, waitUntil } from "./support/server-harness.ts";

interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

/** An open event stream that collects parsed events until closed. */
function openStream(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; events: SseEvent[]; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const events: SseEvent[] = [];
      let buffer = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const e: Partial<SseEvent> & { dataText?: string } = {};
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = line.slice(0, colon);
            const value = line.slice(colon + 1).replace(/^ /, "");
            if (field === "id") e.id = value;
            else if (field === "event") e.event = value;
            else if (field === "data") e.dataText = value;
          }
          if (e.event && e.dataText !== undefined)
            events.push({
              id: e.id,
              event: e.event,
              data: JSON.parse(e.dataText) as Record<string, unknown>,
            });
        }
      });
      res.on("error", () => undefined);
      resolve({ status: res.statusCode ?? 0, events, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("GET /api/events", () => {
  const dir = tempDir("colony-events-");
  let server: RunningServer;
  let token: string;
  const auth = () => ({ authorization: `Bearer ${token}` });

  before(async () => {
    server = await startServer(testConfig(dir.path), { log: () => undefined });
    token = (await import("node:fs")).readFileSync(server.adminTokenFile!, "utf8").trim();
  });
  after(async () => {
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  async function runJob(name: string): Promise<number> {
    const res = await http(`${server.url}/api/job-requests`, {
      headers: auth(),
      json: {
        definition: `job_type: ${name}\ntasks:\n- task_type: a\n  script: [echo a]\n  on_completed: [b]\n- task_type: b\n  script: [echo b]\n`,
      },
    });
    assert.equal(res.status, 201, res.text);
    const id = res.json<{ id: number }>().id;
    await server.runtime.engine.waitFor(id);
    return id;
  }

  it("needs a token", async () => {
    const res = await http(`${server.url}/api/events`);
    assert.equal(res.status, 401);
  });

  it("streams typed job and task events with ids, and resumes with Last-Event-ID", async () => {
    const first = await openStream(`${server.url}/api/events`, auth());
    assert.equal(first.status, 200);
    await waitUntil("hello", () => first.events.some((e) => e.event === "hello"));
    const id = await runJob("events-one");
    await waitUntil("job completed", () =>
      first.events.some(
        (e) => e.event === "job:state" && e.data.id === id && e.data.state === "COMPLETED",
      ),
    );
    const tasks = first.events.filter((e) => e.event === "task:state");
    assert.deepEqual(
      tasks.map((e) => `${e.data.task_type as string}:${e.data.state as string}`),
      ["a:READY", "a:EXECUTING", "a:COMPLETED", "b:READY", "b:EXECUTING", "b:COMPLETED"],
    );
    const done = tasks.at(-1)!;
    assert.equal(done.data.job_request_id, id);
    assert.equal(done.data.exit_code, 0);
    assert.equal(done.data.method, "SHELL");
    assert.match(String(done.data.execution_id), /^[A-Za-z0-9]{8}$/);
    assert.ok(Date.parse(String(done.data.at)) > 0, "at: the server's time");
    const ids = first.events.filter((e) => e.event !== "hello").map((e) => e.id!);
    assert.equal(new Set(ids).size, ids.length, "ids are unique");

    // Leave after the first task event; what follows is replayed on resume.
    const resumeAfter = tasks[0]!.id!;
    first.close();
    const second = await openStream(`${server.url}/api/events`, {
      ...auth(),
      "last-event-id": resumeAfter,
    });
    await waitUntil("hello", () => second.events.some((e) => e.event === "hello"));
    const replayed = second.events.filter((e) => e.event !== "hello").map((e) => e.id);
    assert.deepEqual(replayed, ids.slice(ids.indexOf(resumeAfter) + 1));
    const hello = second.events.find((e) => e.event === "hello")!;
    assert.equal(hello.data.resumed, true);
    assert.equal(hello.id, ids.at(-1));
    second.close();
  });

  it("says reset when it cannot resume, and filters by type", async () => {
    const stale = await openStream(`${server.url}/api/events?types=job`, {
      ...auth(),
      "last-event-id": "0000abcd-5",
    });
    await waitUntil("hello", () => stale.events.some((e) => e.event === "hello"));
    assert.equal(stale.events[0]!.event, "reset");
    await runJob("events-two");
    await waitUntil("job event", () => stale.events.some((e) => e.event === "job:state"));
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(
      stale.events.every((e) => !e.event.startsWith("task:")),
      "task events are filtered out",
    );
    stale.close();
  });

  it("with follow=0, sends what was missed and ends (polling)", async () => {
    const start = await http(`${server.url}/api/events?follow=0`, { headers: auth() });
    assert.equal(start.status, 200);
    const lastId = /^id: (\S+)$/m.exec(start.text)![1]!;
    const id = await runJob("events-poll");
    const poll = await http(`${server.url}/api/events?follow=0&types=job&last_event_id=${lastId}`, {
      headers: auth(),
    });
    const states = [...poll.text.matchAll(/^data: (.*)$/gm)]
      .map((m) => JSON.parse(m[1]!) as { id?: number; state?: string })
      .filter((d) => d.id === id)
      .map((d) => d.state);
    assert.deepEqual(states.at(-1), "COMPLETED");
    assert.ok(states.includes("PENDING"));
  });

  it("refuses a types filter that matches no event (a typo would receive nothing)", async () => {
    for (const types of ["jobs", "task:started", "bogus:*"]) {
      const res = await http(`${server.url}/api/events?follow=0&types=job,${types}`, {
        headers: auth(),
      });
      assert.equal(res.status, 400, types);
      const body = JSON.parse(res.text) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "COLONY_VALIDATION");
      assert.match(
        body.error.message,
        new RegExp(
          `^querystring.types: no event is of type '${types.replace("*", "\\*")}'; use families job, task, unit, ant`,
        ),
      );
    }
    for (const types of ["job,task", "task:state,ant:*", "unit:released"]) {
      const res = await http(`${server.url}/api/events?follow=0&types=${types}`, {
        headers: auth(),
      });
      assert.equal(res.status, 200, types);
    }
  });

  it("carries events other features publish (ant:*, unit:*)", async () => {
    const s = await openStream(`${server.url}/api/events?types=ant:*`, auth());
    await waitUntil("hello", () => s.events.some((e) => e.event === "hello"));
    server.live.publish("ant:connected", { ant_id: "ant-1", tags: ["gpu"] });
    server.live.publish("unit:state", { id: "x" });
    await waitUntil("ant event", () => s.events.some((e) => e.event === "ant:connected"));
    assert.equal(s.events.find((e) => e.event === "ant:connected")!.data.ant_id, "ant-1");
    assert.ok(!s.events.some((e) => e.event === "unit:state"));
    s.close();
  });
});
