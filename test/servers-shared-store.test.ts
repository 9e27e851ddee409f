/**
 * Two real servers sharing one real PostgreSQL store: each keeps the output of the tasks
 * it ran in its own data dir, and either answers for any task, fetching (and following)
 * what the other holds over a signed relay. A holder that is down gets a 502 naming it;
 * forged or misused relay signatures get 401.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import pg from "pg";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { Relay, RELAY_HEADER } from "../src/server/relay.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";
import { postgres } from "./support/services.ts";

const service = await postgres();

const TICKS = parseJobDefinition(`
job_type: ticks
tasks:
  - task_type: tick
    method: SHELL
    script:
      - 'for i in 1 2 3; do echo "tick $i"; sleep 0.4; done'
`);

const BUILD = parseJobDefinition(`
job_type: build
tasks:
  - task_type: build
    method: SHELL
    script:
      - echo "built by colony" > app.txt
    artifacts:
      paths: [app.txt]
`);

void describe(
  "servers sharing a PostgreSQL store",
  { skip: service.url ? false : service.reason },
  () => {
    const schema = `colony_shared_${randomBytes(4).toString("hex")}`;
    const configYaml = `store: "${service.url}?schema=${schema}"\n`;
    let a: TestServer;
    let b: TestServer;
    const closed = new Set<TestServer>();

    before(async () => {
      a = await startTestServer({ configYaml: `node_id: a\n${configYaml}` });
      b = await startTestServer({
        configYaml: `node_id: b\n${configYaml}`,
        secretKeyFrom: a.dataDir,
      });
    });
    after(async () => {
      for (const s of [a, b]) if (s && !closed.has(s)) await s.close();
      const client = new pg.Client({ connectionString: service.url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    });

    const get = (server: TestServer, path: string, headers: Record<string, string> = {}) =>
      fetch(server.url + path, {
        headers: { authorization: `Bearer ${a.adminToken}`, ...headers },
      });

    /** Runs the job on whichever server claims it; answers the one that ran it and the other. */
    async function runTicks(): Promise<{
      holder: TestServer;
      other: TestServer;
      executionId: string;
      jobId: number;
    }> {
      const job = await a.runtime.engine.submit({ definition: TICKS });
      let execution;
      for (let i = 0; i < 100 && !execution; i++) {
        execution = (await a.runtime.store.listTaskExecutions(job.id))[0];
        if (!execution) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(execution?.server, "the execution records the data dir that holds its output");
      const holder = execution.server === a.runtime.serverId ? a : b;
      assert.equal(execution.server, holder.runtime.serverId);
      return { holder, other: holder === a ? b : a, executionId: execution.id, jobId: job.id };
    }

    void it("either server follows a running task's output live, whichever ran it", async () => {
      const { holder, other, jobId } = await runTicks();
      const started = Date.now();
      const res = await get(other, `/api/job-requests/${jobId}/tasks/tick/output?follow=1`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      const reader = res.body!.getReader();
      let text = "";
      let firstAt: number | undefined;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
        firstAt ??= Date.now();
      }
      assert.equal(text, "tick 1\ntick 2\ntick 3\n");
      assert.ok(
        firstAt! - started < 800,
        `the first line came live (${firstAt! - started} ms), not at the end`,
      );
      const local = await (
        await get(holder, `/api/job-requests/${jobId}/tasks/tick/output`)
      ).text();
      assert.equal(local, text);
      const [execution] = await a.runtime.store.listTaskExecutions(jobId);
      const unit = await get(other, `/api/units/${execution!.id}/stdout`);
      assert.equal(await unit.text(), text, "a task's unit reads the same, from either server");
      const fromOffset = await get(other, `/api/job-requests/${jobId}/tasks/tick/output?offset=7`);
      assert.equal(await fromOffset.text(), "tick 2\ntick 3\n");
    });

    void it("either server serves a task's artifact, whichever stored it", async () => {
      const job = await a.runtime.engine.submit({ definition: BUILD });
      assert.equal((await a.runtime.engine.waitFor(job.id)).state, "COMPLETED");
      const {
        items: [artifact],
      } = await a.runtime.store.asyncActions.listArtifacts({ jobRequestId: job.id });
      assert.ok(artifact?.server, "the artifact records the data dir that holds its bytes");
      const holder = artifact.server === a.runtime.serverId ? a : b;
      const other = holder === a ? b : a;
      assert.equal(artifact.server, holder.runtime.serverId);
      const res = await get(other, `/api/artifacts/${artifact.id}/download`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "built by colony\n");
      // The other server's retention sweep leaves it alone: its blob is not there.
      await other.runtime.store.asyncActions.addArtifact({
        ...artifact,
        ownerId: "expired",
        expiresAt: new Date(0),
      });
      assert.equal(await other.runtime.asyncActions.artifacts.sweep(), 0);
    });

    void it("a server whose node_id another running server has refuses to start", async () => {
      await assert.rejects(
        startTestServer({ configYaml: `node_id: a\n${configYaml}`, secretKeyFrom: a.dataDir }),
        (error: Error) => {
          assert.equal((error as { code?: string }).code, "COLONY_SERVER_START");
          assert.ok(
            error.message.startsWith(
              `node_id 'a' is taken by another server of this store (${a.url}, seen `,
            ),
            error.message,
          );
          assert.match(error.message, /give each server that shares a store its own node_id/);
          return true;
        },
      );
    });

    void it("refuses relays it cannot verify, and never relays a relay", async () => {
      const { holder, other, executionId } = await runTicks();
      await holder.runtime.engine.waitFor(
        (await holder.runtime.store.getTaskExecution(executionId))!.jobRequestId,
      );
      const path = `/api/task-executions/${executionId}/output`;
      const relay = new Relay(readFileSync(join(a.dataDir, "secret.key")));
      const plain = (server: TestServer, headers: Record<string, string>, method = "GET") =>
        fetch(server.url + path, { method, headers });

      const good = await plain(holder, { [RELAY_HEADER]: relay.sign(path) });
      assert.equal(good.status, 200);
      assert.equal(await good.text(), "tick 1\ntick 2\ntick 3\n");

      const forged = new Relay(randomBytes(32)).sign(path);
      const stale = relay.sign(path, Date.now() - 60_000);
      const otherPath = relay.sign(`${path}?offset=0`);
      for (const header of [forged, stale, otherPath, "123.abc"]) {
        const res = await plain(holder, { [RELAY_HEADER]: header });
        assert.equal(res.status, 401, header);
        const body = (await res.json()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, "COLONY_UNAUTHENTICATED");
        assert.match(body.error.message, /signature is not valid here/);
      }
      // A relay to the server that does not hold it is answered there, not sent on.
      const looped = await plain(other, { [RELAY_HEADER]: relay.sign(path) });
      assert.equal(looped.status, 502);
      assert.match(
        ((await looped.json()) as { error: { message: string } }).error.message,
        /not on this server/,
      );
    });

    void it("with auth off too, a relayed request is answered where it lands, never sent on", async () => {
      const { holder, executionId } = await runTicks();
      await holder.runtime.engine.waitFor(
        (await holder.runtime.store.getTaskExecution(executionId))!.jobRequestId,
      );
      const open = await startTestServer({
        auth: false,
        configYaml: `node_id: open\n${configYaml}`,
        secretKeyFrom: a.dataDir,
      });
      try {
        const path = `/api/task-executions/${executionId}/output`;
        const relayed = await fetch(open.url + path, { headers: { [RELAY_HEADER]: "1.2" } });
        assert.equal(relayed.status, 502);
        const asked = await fetch(open.url + path);
        assert.equal(asked.status, 200);
        assert.equal(await asked.text(), "tick 1\ntick 2\ntick 3\n");
      } finally {
        await open.close();
      }
    });

    void it("a holder that is down gets a 502 that names it", async () => {
      const { holder, other, executionId } = await runTicks();
      await holder.runtime.engine.waitFor(
        (await holder.runtime.store.getTaskExecution(executionId))!.jobRequestId,
      );
      const url = holder.url;
      await holder.close();
      closed.add(holder);
      const res = await get(other, `/api/task-executions/${executionId}/output`);
      assert.equal(res.status, 502);
      const body = (await res.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "COLONY_OUTPUT_ELSEWHERE");
      assert.ok(
        body.error.message.startsWith(
          `the output of execution ${executionId} is on server '${holder === a ? "a" : "b"}' at ${url}, which did not answer (`,
        ),
        body.error.message,
      );
    });
  },
);
