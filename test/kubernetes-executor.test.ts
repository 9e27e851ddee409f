/**
 * The KUBERNETES executor's lifecycle against a fake API server (test/support/
 * fake-kube-api.ts; no cluster can run here): create, watch the phase, follow the log,
 * exit code from the container status, delete on completion and on cancel, re-attach
 * by label after a restart, orphan reaping, registry secret, bearer token. The fake
 * runs each main container's `/bin/sh -c <script>` as a local process, so output, exit
 * codes and signals are real; everything about scheduling and images is simulated.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { ColonyError } from "../src/core/errors.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import type { TaskDefinition } from "../src/core/job-definition.ts";
import type { KubernetesConfig } from "../src/executors/container-options.ts";
import {
  executorConformance,
  followedNotStarted,
  quickLine,
  readAll,
  readUntil,
} from "../src/executors/executor-conformance.ts";
import {
  createKubernetesExecutor,
  type KubernetesExecutor,
} from "../src/executors/kubernetes/kubernetes-executor.ts";
import { openEmbedded } from "../src/runtime/embedded.ts";
import { startFakeKubeApi, type FakeKubeApi } from "./support/fake-kube-api.ts";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.ts";
import { seedKubernetesConfig, seedTask } from "./support/seed-fixtures.ts";

const TOKEN = "fake-bearer-token-7d1c";
const roots: string[] = [];
/** The fake API server speaks HTTPS with a test CA; ca_file points colony at that CA. */
let certs: TestCerts | undefined;
async function testCerts(): Promise<TestCerts> {
  certs ??= makeTestCerts(await tempRoot());
  return certs;
}
async function startFake(): Promise<FakeKubeApi> {
  const c = await testCerts();
  return startFakeKubeApi({
    token: TOKEN,
    cert: c.serverCert,
    key: c.serverKey,
    clientCa: c.caCert,
  });
}
async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "colony-k8s-"));
  roots.push(dir);
  return dir;
}

function task(script: string[], options: Record<string, unknown> = {}): TaskDefinition {
  return {
    ...seedTask("kubernetes-task", script),
    environment: {},
    executorOptions: { container: { image: "busybox:1.36" }, ...options },
  };
}

function requester(root: string) {
  return (
    id: string,
    t: TaskDefinition,
    extra: Partial<ExecutionRequest> = {},
  ): ExecutionRequest => ({
    executionId: id,
    method: "KUBERNETES",
    task: t,
    env: { ...t.environment },
    variables: {},
    unitDir: join(root, "units", id),
    jobType: "k8s-test",
    ...extra,
  });
}

/** Deletion is graceful (as on a cluster): the pod goes once its containers have ended. */
async function podsGone(fake: FakeKubeApi, message = "no pod is left"): Promise<void> {
  for (let i = 0; i < 200 && fake.pods().length > 0; i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.deepEqual(
    fake.pods().map((p) => p.metadata.name),
    [],
    message,
  );
}

function fakeConfig(fake: FakeKubeApi, extra: KubernetesConfig = {}): KubernetesConfig {
  return {
    host: fake.url,
    bearer_token: TOKEN,
    ca_file: certs!.caCert,
    namespace: "colony-test",
    ...extra,
  };
}

executorConformance(
  "kubernetes (fake API server)",
  async () => {
    const fake = await startFake();
    const root = await tempRoot();
    const executor = createKubernetesExecutor({
      config: fakeConfig(fake),
      killGraceMs: 2000,
      reapIntervalMs: 0,
    });
    const req = requester(root);
    return {
      executor,
      requests: {
        quick: (id) => req(id, task([`echo "${quickLine(id)}"`])),
        failing: (id, code) => req(id, task([`exit ${code}`])),
        long: (id) => req(id, task(['sleep 300 & echo "grandchild $!"', "wait"])),
        chatty: (id, lines) =>
          req(
            id,
            task([
              `for i in $(seq 1 ${lines}); do echo "line $i"; sleep ${(1 / lines).toFixed(3)}; done`,
            ]),
          ),
        // The fake runs containers as local processes: cancel must end the grandchild too.
        localProcesses: true,
      },
      async teardown() {
        await executor.close({ killRunning: true });
        await podsGone(fake, "every pod was deleted");
        await fake.close();
      },
    };
  },
  { adopts: true },
);

describe("kubernetes executor (fake API server)", () => {
  let fake: FakeKubeApi;
  let root: string;
  let req: ReturnType<typeof requester>;
  let executor: KubernetesExecutor;
  const logged: string[] = [];
  let n = 0;
  const newId = (what: string) => `k8${what.slice(0, 3)}${String(++n).padStart(3, "0")}`;

  before(async () => {
    fake = await startFake();
    root = await tempRoot();
    req = requester(root);
    executor = createKubernetesExecutor({
      config: fakeConfig(fake),
      killGraceMs: 2000,
      reapIntervalMs: 0,
      log: (m) => logged.push(m),
    });
  });

  after(async () => {
    await executor?.close({ killRunning: true });
    await fake?.close();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it("runs the seed's task with the seed's ant config: secret, strict pod, token, cleanup (fake API server)", async () => {
    const seedConfig = seedKubernetesConfig();
    const ex = createKubernetesExecutor({
      // The seed's config, pointed at the fake (its host and token are placeholders).
      config: {
        ...seedConfig,
        host: fake.url,
        bearer_token: TOKEN,
        ca_file: certs!.caCert,
        cert_file: undefined,
        key_file: undefined,
      },
      reapIntervalMs: 0,
      log: (m) => logged.push(m),
    });
    const id = newId("seed");
    const t = seedTask("kubernetes-task", [
      "tr '\\0' '\\n' < /proc/$$/environ | grep AWS-KEY",
      "echo done",
    ]);
    try {
      const handle = await ex.start(req(id, t));
      assert.equal(handle["namespace"], "default");
      assert.equal(handle["container"], "task1");
      const stored = fake.pods().find((p) => p.metadata.name === handle["podName"]);
      assert.ok(stored, "the pod was created");
      assert.equal(stored.metadata.labels?.["colony.unit-id"], id);
      assert.deepEqual(
        (stored.spec["imagePullSecrets"] as { name: string }[]).map((s) => s.name),
        ["image-pull-secret", `${handle["podName"]}-registry`],
      );
      const result = await ex.wait(id);
      assert.deepEqual([result.exitCode, result.killed], [0, false]);
      assert.equal(await readAll(await ex.logStream({ executionId: id })), "AWS-KEY=Mykey\ndone\n");
      const calls = fake.requests.filter((r) => r.url.includes("/namespaces/default/"));
      assert.ok(
        calls.some(
          (r) => r.method === "POST" && r.url.startsWith("/api/v1/namespaces/default/secrets"),
        ),
      );
      assert.ok(
        calls.some((r) => r.method === "POST" && /\/pods\?fieldValidation=Strict$/.test(r.url)),
        "pods are created with strict field validation",
      );
      assert.ok(
        fake.requests.every((r) => r.authorization === `Bearer ${TOKEN}`),
        "the bearer token is sent",
      );
      await podsGone(fake, "the pod is deleted on completion");
      assert.deepEqual(fake.secrets(), [], "the registry secret is deleted with it");
      assert.equal(readFileSync(join(root, "units", id, "exit"), "utf8"), "0 -\n");
      // The builder's warnings about the seed's example went to the log, without secrets.
      assert.ok(logged.some((m) => m.includes("duplicate mount paths")));
      assert.ok(logged.every((m) => !m.includes(TOKEN) && !m.includes("docker-registry-pass")));
    } finally {
      await ex.close({ killRunning: true });
    }
  });

  it("takes the exit code from the main container's status while a service still runs (fake API server)", async () => {
    const id = newId("svc");
    const t = task(["echo main; exit 4"], {
      services: [{ name: "db", image: "postgres:16", memory_limit: "256Mi" }],
    });
    const handle = await executor.start(req(id, t));
    const stored = fake.pods().find((p) => p.metadata.name === handle["podName"])!;
    assert.deepEqual(
      stored.spec.containers.map((c) => c.name),
      ["task1", "svc-db"],
    );
    const result = await executor.wait(id);
    assert.deepEqual([result.exitCode, result.killed], [4, false]);
    assert.equal(await readAll(await executor.logStream({ executionId: id })), "main\n");
    await podsGone(fake);
  });

  it("fails a pod whose image cannot be pulled, with the kubelet's reason (fake API server)", async () => {
    const id = newId("pull");
    const result = await executor.run(
      req(id, task(["true"], { container: { image: "registry.example/pull-fails:1" } })),
    );
    assert.equal(result.exitCode, null);
    assert.equal(result.errorCode, "COLONY_POD_FAILED");
    assert.match(result.error ?? "", /cannot start: ErrImagePull: .*pull access denied/);
    await podsGone(fake);
  });

  it("keeps every byte when the API server drops the watch and log streams (fake API server)", async () => {
    const id = newId("drop");
    await executor.start(
      req(id, task(["for i in $(seq 1 20); do echo line $i; sleep 0.05; done"])),
    );
    await readUntil(executor, id, /line 5\n/);
    fake.dropStreams();
    const result = await executor.wait(id);
    assert.equal(result.exitCode, 0);
    const expected = Array.from({ length: 20 }, (_, i) => `line ${i + 1}\n`).join("");
    assert.equal(await readAll(await executor.logStream({ executionId: id })), expected);
  });

  it("re-attaches after a restart by the unit-id label and gets every byte once (fake API server)", async () => {
    const id = newId("reat");
    // It ends only once the test says so: the fake runs containers as local processes.
    const go = join(await tempRoot(), "go");
    const request = req(
      id,
      task(["echo before", `while [ ! -f ${go} ]; do sleep 0.05; done`, "echo after", "exit 5"]),
    );
    const first = createKubernetesExecutor({ config: fakeConfig(fake), reapIntervalMs: 0 });
    const handle = await first.start(request);
    await readUntil(first, id, /before\n/);
    await first.close(); // the pod runs on
    assert.equal(fake.pods().length, 1);
    const second = createKubernetesExecutor({ config: fakeConfig(fake), reapIntervalMs: 0 });
    try {
      assert.equal(await second.attach!(request, handle), true);
      await writeFile(go, "");
      const result = await second.wait(id);
      assert.deepEqual([result.exitCode, result.killed], [5, false]);
      assert.equal(readFileSync(join(request.unitDir, "stdout"), "utf8"), "before\nafter\n");
      await podsGone(fake);
    } finally {
      await second.close();
    }
  });

  it("a start again of a pod an earlier colony made and did not record follows it (fake API server)", async () => {
    const id = newId("unrec");
    const go = join(await tempRoot(), "go");
    const request = req(
      id,
      task(["echo before", `while [ ! -f ${go} ]; do sleep 0.05; done`, "echo after", "exit 6"]),
    );
    const first = createKubernetesExecutor({ config: fakeConfig(fake), reapIntervalMs: 0 });
    const handle = await first.start(request);
    await readUntil(first, id, /before\n/);
    await first.close(); // died before the engine recorded the start: the task is READY
    const second = createKubernetesExecutor({ config: fakeConfig(fake), reapIntervalMs: 0 });
    try {
      const error = await followedNotStarted(
        second.start({ ...request, mayHaveStarted: true }),
        "made a second pod",
      );
      assert.equal(error.handle?.["podName"], handle["podName"]);
      assert.equal(fake.pods().length, 1, "one pod");
      await writeFile(go, "");
      const result = await second.wait(id);
      assert.deepEqual([result.exitCode, result.killed], [6, false]);
      assert.equal(readFileSync(join(request.unitDir, "stdout"), "utf8"), "before\nafter\n");
      await podsGone(fake);
    } finally {
      await second.close();
    }
  });

  it("reaps orphan pods: collects ended ones, deletes running ones the store says are finished (fake API server)", async () => {
    const ended = newId("end");
    const running = newId("run");
    const go = join(await tempRoot(), "go");
    const endedReq = req(
      ended,
      task(["echo orphan-output", `while [ ! -f ${go} ]; do sleep 0.05; done`, "exit 3"]),
    );
    const first = createKubernetesExecutor({ config: fakeConfig(fake), reapIntervalMs: 0 });
    const endedHandle = await first.start(endedReq);
    await first.start(req(running, task(["echo spinning", "sleep 300"])));
    await readUntil(first, running, /spinning\n/);
    await readUntil(first, ended, /orphan-output\n/);
    await first.close();
    await writeFile(go, "");
    for (let i = 0; i < 100; i++) {
      const pod = fake.pods().find((p) => p.metadata.labels?.["colony.unit-id"] === ended);
      if (pod?.status.containerStatuses?.[0]?.state["terminated"]) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const second = createKubernetesExecutor({
      config: fakeConfig(fake),
      reapIntervalMs: 0,
      killGraceMs: 1000,
      isExecutionLive: async (id) => id === ended,
    });
    try {
      assert.deepEqual(await second.reapOrphans(), { collected: [], stopped: [running] });
      const third = createKubernetesExecutor({
        config: fakeConfig(fake),
        reapIntervalMs: 0,
        isExecutionLive: async () => false,
      });
      assert.deepEqual(await third.reapOrphans(), { collected: [ended], stopped: [] });
      await third.close();
      await podsGone(fake);
      assert.equal(fake.processes().length, 0, "the running orphan's process was stopped");
      assert.equal(readFileSync(join(endedReq.unitDir, "exit"), "utf8"), "3 -\n");
      assert.equal(readFileSync(join(endedReq.unitDir, "stdout"), "utf8"), "orphan-output\n");
      assert.equal(await second.attach!(endedReq, endedHandle), false);
      assert.equal((await second.wait(ended)).exitCode, 3);
    } finally {
      await second.close();
    }
  });

  it("isInstalled asks the API server; a wrong token fails without showing the token (fake API server)", async () => {
    assert.equal(await executor.isInstalled(), true);
    const wrongToken = "wrong-token-5566";
    const wrong = createKubernetesExecutor({
      config: fakeConfig(fake, { bearer_token: wrongToken }),
      reapIntervalMs: 0,
    });
    try {
      assert.equal(await wrong.isInstalled(), false);
      const err = await wrong.start(req(newId("auth"), task(["true"]))).then(
        () => assert.fail("expected a refusal"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ColonyError);
      assert.match(err.message, /401/);
      assert.ok(!err.message.includes(wrongToken));
    } finally {
      await wrong.close();
    }
  });

  it("authenticates with cert_file/key_file (mTLS) and verifies the server with ca_file (fake API server)", async () => {
    const client = certs!.client("colony-ant");
    const ex = createKubernetesExecutor({
      config: {
        host: fake.url,
        ca_file: certs!.caCert,
        cert_file: client.cert,
        key_file: client.key,
        namespace: "colony-test",
      },
      reapIntervalMs: 0,
    });
    const untrusting = createKubernetesExecutor({
      config: { host: fake.url, bearer_token: TOKEN, namespace: "colony-test" }, // no ca_file
      reapIntervalMs: 0,
    });
    try {
      const id = newId("mtls");
      const r = await ex.run(req(id, task(["echo via-client-cert"])));
      assert.equal(r.exitCode, 0);
      assert.equal(await readAll(await ex.logStream({ executionId: id })), "via-client-cert\n");
      assert.equal(await untrusting.isInstalled(), false, "the server's certificate is checked");
    } finally {
      await ex.close();
      await untrusting.close();
    }
  });

  it("runs a KUBERNETES job through the engine (fake API server)", async () => {
    const dataDir = await tempRoot();
    const ex = createKubernetesExecutor({ config: fakeConfig(fake), reapIntervalMs: 0 });
    const rt = await openEmbedded({ dataDir, executors: [ex], engine: { pollMs: 20 } });
    try {
      await rt.engine.start();
      const job = await rt.engine.submit({
        definition: parseJobDefinition(`job_type: k8s-dag
tasks:
- task_type: build
  method: KUBERNETES
  container: {image: busybox:1.36}
  script: ['echo "::set-output name=Out::x42"', "exit 2"]
  on_exit_code: {"2": report}
- task_type: report
  method: KUBERNETES
  container: {image: busybox:1.36}
  script: ['echo got {{.Out}}']
`),
      });
      const final = await rt.engine.waitFor(job.id);
      assert.equal(final.state, "COMPLETED");
      const view = await rt.engine.getJob(job.id);
      const report = view.tasks.find((t) => t.taskType === "report")!;
      assert.equal(readFileSync(join(dataDir, "units", report.id, "stdout"), "utf8"), "got x42\n");
      await podsGone(fake);
    } finally {
      await rt.close({ cancelRunning: true });
    }
  });
});
