/**
 * The DOCKER executor against a real Docker engine (scripts/test-docker.sh starts one
 * and imports colony-test/busybox): the executor conformance suite, then what only
 * containers have — the seed's task fields visible in `docker inspect`, resource limits,
 * pull policy, registry credentials kept out of errors, services on a per-task network,
 * re-attach and orphan reaping after a restart, stdin, long scripts, and a job through
 * the engine. Every container and network a test creates carries this run's owner
 * label, and the last test checks none is left.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { extract as tarExtract, pack as tarPack } from "tar-stream";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { ColonyError } from "../src/core/errors.ts";
import type { ExecutionRequest } from "../src/core/executor.ts";
import { taskDefinition, type TaskDefinition } from "../src/core/job-definition.ts";
import { createDockerApi, type DockerApi } from "../src/executors/docker/docker-api.ts";
import {
  createDockerExecutor,
  type DockerExecutor,
} from "../src/executors/docker/docker-executor.ts";
import { taskContainerOptions, type DockerConfig } from "../src/executors/container-options.ts";
import { containerWorkDir } from "../src/executors/docker/container-spec.ts";
import { extractArchive, packWorkDir } from "../src/executors/docker/work-dir-archive.ts";
import {
  executorConformance,
  followedNotStarted,
  quickLine,
  readAll,
  readUntil,
} from "../src/executors/executor-conformance.ts";
import { openEmbedded } from "../src/runtime/embedded.ts";
import { runCli, tempDir } from "./support/cli.ts";
import { docker } from "./support/services.ts";

const service = await docker();
const IMAGE = service.image;
/** This run's owner label: everything the tests create is found (and checked) by it. */
const OWNER = `colony-test-${randomBytes(4).toString("hex")}`;
const roots: string[] = [];

async function tempRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "colony-docker-"));
  roots.push(dir);
  return dir;
}

function task(
  parts: Partial<TaskDefinition>,
  options: Record<string, unknown> = {},
): TaskDefinition {
  return taskDefinition("t", {
    method: "DOCKER",
    executorOptions: { container: { image: IMAGE }, ...options },
    ...parts,
  });
}

function requester(root: string) {
  return (
    id: string,
    script: string[],
    options: Record<string, unknown> = {},
    extra: Partial<ExecutionRequest> = {},
  ): ExecutionRequest => ({
    executionId: id,
    method: "DOCKER",
    task: task({ script }, options),
    env: {},
    variables: {},
    unitDir: join(root, "units", id),
    jobType: "docker-test",
    ...extra,
  });
}

interface Inspect {
  Id: string;
  Name: string;
  Config: { Labels: Record<string, string>; Env: string[]; WorkingDir: string };
  HostConfig: {
    Privileged: boolean;
    NetworkMode: string;
    NanoCpus: number;
    Memory: number;
    CpuShares: number;
    MemoryReservation: number;
    Init: boolean;
  };
}

async function ownedContainers(
  api: DockerApi,
  extra: string[] = [],
): Promise<{ Id: string; Labels: Record<string, string> }[]> {
  return api.call("GET", "/containers/json", {
    query: { all: 1, filters: JSON.stringify({ label: [`colony.owner=${OWNER}`, ...extra] }) },
  });
}

async function ownedNetworks(api: DockerApi): Promise<{ Id: string; Name: string }[]> {
  return api.call("GET", "/networks", {
    query: { filters: JSON.stringify({ label: [`colony.owner=${OWNER}`] }) },
  });
}

async function inspectUnit(api: DockerApi, id: string): Promise<Inspect> {
  const [c] = await ownedContainers(api, [`colony.unit-id=${id}`, "colony.role=main"]);
  assert.ok(c, `no container labelled colony.unit-id=${id}`);
  return api.call<Inspect>("GET", `/containers/${c.Id}/json`);
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ColonyError, `expected a ColonyError, got ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  assert.fail("expected a rejection");
}

executorConformance(
  "docker (real engine)",
  async () => {
    if (!service.url) return undefined;
    const root = await tempRoot();
    const executor = createDockerExecutor({ owner: OWNER, killGraceMs: 2000, reapIntervalMs: 0 });
    const req = requester(root);
    return {
      executor,
      requests: {
        quick: (id) => req(id, [`echo "${quickLine(id)}"`]),
        failing: (id, code) => req(id, [`exit ${code}`]),
        long: (id) => req(id, ['sleep 300 & echo "grandchild $!"', "wait"]),
        chatty: (id, lines) =>
          req(id, [
            `for i in $(seq 1 ${lines}); do echo "line $i"; sleep ${(1 / lines).toFixed(3)}; done`,
          ]),
      },
      teardown: () => executor.close({ killRunning: true }),
    };
  },
  { adopts: true },
);

describe("docker executor (real engine)", { skip: service.url ? false : service.reason }, () => {
  let api: DockerApi;
  let executor: DockerExecutor;
  let root: string;
  let req: ReturnType<typeof requester>;
  const n = { i: 0 };
  const newId = (what: string) => `dk-${OWNER.slice(-8)}-${what}-${++n.i}`;

  before(async () => {
    api = createDockerApi();
    root = await tempRoot();
    req = requester(root);
    executor = createDockerExecutor({ owner: OWNER, killGraceMs: 2000, reapIntervalMs: 0 });
  });

  after(async () => {
    await executor?.close({ killRunning: true });
    api?.close();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it("isInstalled pings the engine (and says false for one that is not there)", async () => {
    assert.equal(await executor.isInstalled(), true);
    const none = createDockerExecutor({
      config: { host: "unix:///nonexistent.sock" },
      reapIntervalMs: 0,
    });
    assert.equal(await none.isInstalled(), false);
    await none.close();
  });

  it("runs the seed's task fields: environment, working_directory, host_network, limits, labels", async () => {
    const id = newId("seed");
    const request = req(
      id,
      [
        // A name like AWS-KEY is not a shell variable: read it from PID 1's environment.
        "tr '\\0' '\\n' < /proc/1/environ | grep -E '^(AWS-KEY|FROM_ANT)=' | sort",
        "pwd",
        "echo ready",
        "sleep 300",
      ],
      {
        name: "task1",
        working_directory: "/tmp",
        network_mode: "mod1",
        host_network: true,
        container: {
          image: IMAGE,
          cpu_limit: "0.5",
          cpu_request: "250m",
          memory_limit: "64Mi",
          memory_request: "32Mi",
        },
        pod_labels: { team: "infra" },
      },
      { env: { "AWS-KEY": "Mykey" }, jobRequestId: 42 },
    );
    const ex = createDockerExecutor({
      owner: OWNER,
      killGraceMs: 2000,
      reapIntervalMs: 0,
      config: { environment: { FROM_ANT: "yes", "AWS-KEY": "overridden-by-task" } },
    });
    try {
      await ex.start(request);
      const m = await readUntil(ex, id, /ready\n/);
      assert.match(m.input ?? "", /AWS-KEY=Mykey\n/);
      assert.match(m.input ?? "", /FROM_ANT=yes\n/);
      assert.match(m.input ?? "", /^\/tmp$/m);
      const c = await inspectUnit(api, id);
      assert.match(c.Name, /^\/task1-dk-/);
      assert.equal(c.HostConfig.Privileged, false);
      assert.equal(c.HostConfig.NetworkMode, "host", "host_network wins over network_mode");
      assert.equal(c.HostConfig.NanoCpus, 500_000_000);
      assert.equal(c.HostConfig.CpuShares, 256);
      assert.equal(c.HostConfig.Memory, 64 * 2 ** 20);
      assert.equal(c.HostConfig.MemoryReservation, 32 * 2 ** 20);
      assert.equal(c.HostConfig.Init, true);
      assert.equal(c.Config.WorkingDir, "/tmp");
      assert.equal(c.Config.Labels["colony.unit-id"], id);
      assert.equal(c.Config.Labels["colony.job-request-id"], "42");
      assert.equal(c.Config.Labels["team"], "infra");
      await ex.cancel(id);
      const result = await ex.wait(id);
      assert.equal(result.killed, true);
      // 143, not 137: SIGTERM reached the script through docker-init (no SIGKILL after the grace).
      assert.equal(result.exitCode, 143);
      assert.deepEqual(
        await ownedContainers(api, [`colony.unit-id=${id}`]),
        [],
        "cancel removed it",
      );
    } finally {
      await ex.close({ killRunning: true });
    }
  });

  it("privileged: true creates a privileged container (run where the engine allows it)", async () => {
    // Record the create bodies this executor sends to the real engine.
    const bodies: { Labels?: Record<string, string>; HostConfig?: { Privileged?: boolean } }[] = [];
    const recording: DockerApi = {
      ...api,
      describe: api.describe,
      call: (method, path, o) => {
        if (path === "/containers/create") bodies.push(o?.body as (typeof bodies)[number]);
        return api.call(method, path, o);
      },
      stream: (m, p, o) => api.stream(m, p, o),
      hijack: (p, o) => api.hijack(p, o),
      close: () => undefined,
    };
    const ex = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0, api: recording });
    const id = newId("privileged");
    try {
      let canRun = true;
      const r = await ex
        .run(req(id, ["grep CapEff /proc/self/status"], { privileged: true }))
        .catch((err: unknown) => {
          // Inside an unprivileged sandbox (as on the CI machine) the engine refuses it.
          assert.ok(err instanceof ColonyError);
          assert.equal(err.code, "COLONY_CONTAINER_START_FAILED");
          assert.match(err.message, /could not start the container of task 't'.*caps/);
          canRun = false;
          return undefined;
        });
      if (canRun) assert.equal(r?.exitCode, 0);
      assert.equal(bodies.length, 1);
      assert.equal(bodies[0]?.HostConfig?.Privileged, true);
      assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${id}`]), [], "nothing left");
      const locked = createDockerExecutor({
        owner: OWNER,
        reapIntervalMs: 0,
        config: { allow_privileged: false },
      });
      const e = await codeOf(locked.start(req(newId("locked"), ["true"], { privileged: true })));
      await locked.close();
      assert.equal(e.code, "COLONY_INVALID_CONTAINER_OPTIONS");
      assert.match(e.message, /allow_privileged/);
    } finally {
      await ex.close({ killRunning: true });
    }
  });

  it("runs unprivileged on the default network unless the task says otherwise", async () => {
    const id = newId("plain");
    await executor.start(req(id, ["echo up", "sleep 300"]));
    await readUntil(executor, id, /up\n/);
    const c = await inspectUnit(api, id);
    assert.equal(c.HostConfig.Privileged, false);
    assert.equal(c.HostConfig.NetworkMode, "default");
    assert.equal(c.HostConfig.NanoCpus, 0);
    await executor.cancel(id);
    await executor.wait(id);
  });

  it("pull_policy never with a missing image fails at once with a clear error", async () => {
    const ex = createDockerExecutor({
      owner: OWNER,
      reapIntervalMs: 0,
      config: { registry: { pull_policy: "never" } },
    });
    try {
      const id = newId("never");
      const started = Date.now();
      const e = await codeOf(
        ex.start(req(id, ["true"], { container: { image: "colony-test/absent:1.0" } })),
      );
      assert.equal(e.code, "COLONY_IMAGE_NOT_PRESENT");
      assert.match(e.message, /colony-test\/absent:1\.0.*pull_policy is never/);
      assert.ok(Date.now() - started < 3000);
      // The same executor runs images that are present.
      assert.equal((await ex.run(req(newId("never-ok"), ["true"]))).exitCode, 0);
    } finally {
      await ex.close();
    }
  });

  it("pull_policy always pulls with the registry credentials, and the password never shows", async () => {
    const password = `s3cret-${randomBytes(6).toString("hex")}`;
    const config: DockerConfig = {
      registry: { registry: "127.0.0.1:1", username: "user", password, pull_policy: "always" },
    };
    const ex = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0, config });
    try {
      const e = await codeOf(
        ex.start(
          req(newId("always"), ["true"], { container: { image: "127.0.0.1:1/colony/none:1" } }),
        ),
      );
      assert.equal(e.code, "COLONY_IMAGE_PULL_FAILED");
      assert.match(e.message, /127\.0\.0\.1:1\/colony\/none:1/);
      assert.ok(!e.message.includes(password), "the registry password is not in the error");
    } finally {
      await ex.close();
    }
  });

  it("starts services as sidecars on a per-task network and removes them with the task", async () => {
    const id = newId("svc");
    const request = req(
      id,
      [
        "for i in $(seq 1 50); do wget -qO- http://web:8080/ 2>/dev/null && break; sleep 0.1; done",
        "echo main-done",
      ],
      {
        services: [
          {
            name: "web",
            image: IMAGE,
            entrypoint: ["/bin/sh", "-c"],
            command: [
              "mkdir -p /www && echo hello-from-service > /www/index.html && exec httpd -f -p 8080 -h /www",
            ],
            memory_limit: "32Mi",
          },
        ],
      },
    );
    const watch = (async () => {
      // While it runs, the sidecar and the network exist.
      for (let i = 0; i < 100; i++) {
        const svc = await ownedContainers(api, [`colony.unit-id=${id}`, "colony.role=service"]);
        if (svc.length > 0) return { svc: svc.length, nets: (await ownedNetworks(api)).length };
        await new Promise((r) => setTimeout(r, 50));
      }
      return { svc: 0, nets: 0 };
    })();
    const result = await executor.run(request);
    const seen = await watch;
    assert.equal(result.exitCode, 0);
    assert.equal(
      await readAll(await executor.logStream({ executionId: id })),
      "hello-from-service\nmain-done\n",
    );
    assert.deepEqual(seen, { svc: 1, nets: 1 });
    assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${id}`]), []);
    assert.deepEqual(
      (await ownedNetworks(api)).filter((x) => x.Name.includes(id)),
      [],
      "the per-task network is removed",
    );
  });

  it("feeds stdin from the request's stdin file and runs scripts longer than one argument", async () => {
    const stdinPath = join(root, "stdin.txt");
    await writeFile(stdinPath, "payload line 1\npayload line 2\n");
    const id = newId("stdin");
    const r = await executor.run(req(id, ["cat", "echo end"], {}, { stdinPath }));
    assert.equal(r.exitCode, 0);
    assert.equal(
      await readAll(await executor.logStream({ executionId: id })),
      "payload line 1\npayload line 2\nend\n",
    );
    const long = newId("long-script");
    const filler = `# ${"x".repeat(80 * 1024)}`;
    const r2 = await executor.run(req(long, [filler, "echo long-ok", "exit 4"]));
    assert.equal(r2.exitCode, 4);
    assert.equal(await readAll(await executor.logStream({ executionId: long })), "long-ok\n");
  });

  /**
   * A container started by an executor that then goes away, as colony does, while the
   * container waits for /signal/go; go() lets it print "after" and exit `code`.
   */
  async function abandoned(what: string, code: number) {
    const id = newId(what);
    const signalDir = await tempRoot();
    const request = req(
      id,
      [
        "echo before",
        "while [ ! -f /signal/go ]; do sleep 0.05; done",
        "echo after",
        `exit ${code}`,
      ],
      {
        container: {
          image: IMAGE,
          volumes: { host_path: [{ name: "signal", mount_path: "/signal", host_path: signalDir }] },
        },
      },
    );
    const first = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    const handle = await first.start(request);
    await readUntil(first, id, /before\n/);
    await first.close(); // colony goes away; the container runs on
    return { id, request, handle, go: () => writeFile(join(signalDir, "go"), "") };
  }

  /** Lets it end and checks, through `second`: exit `code`, every byte once, nothing left. */
  async function endsOnce(
    second: DockerExecutor,
    run: Awaited<ReturnType<typeof abandoned>>,
    code: number,
  ) {
    await run.go();
    const result = await second.wait(run.id);
    assert.deepEqual([result.exitCode, result.killed], [code, false]);
    assert.equal(readFileSync(join(run.request.unitDir, "stdout"), "utf8"), "before\nafter\n");
    assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${run.id}`]), []);
  }

  it("a restarted executor re-attaches to a running container and gets every byte once", async () => {
    const run = await abandoned("reattach", 7);
    const second = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    try {
      assert.equal(await second.attach!(run.request, run.handle), true);
      await endsOnce(second, run, 7);
    } finally {
      await second.close();
    }
  });

  it("a start again of a container an earlier colony started and did not record follows it, never runs it twice", async () => {
    // The first executor's colony died before the engine recorded the start: READY.
    const run = await abandoned("unrecorded", 5);
    const second = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    try {
      const error = await followedNotStarted(
        second.start({ ...run.request, mayHaveStarted: true }),
        "started a second time",
      );
      assert.equal(error.handle?.["containerId"], run.handle["containerId"]);
      await endsOnce(second, run, 5);
    } finally {
      await second.close();
    }
  });

  it("after a restart, copies the work dir out of a container that ended meanwhile or ends later", async () => {
    const signalDir = await tempRoot();
    const make = async (what: string) => {
      const id = newId(what);
      const workDir = join(await tempRoot(), "work");
      await mkdir(workDir);
      const request = req(
        id,
        [
          "echo before",
          `echo ${what} > early.txt`,
          `while [ ! -f /signal/${what} ]; do sleep 0.05; done`,
          "echo late > late.txt",
        ],
        {
          container: {
            image: IMAGE,
            volumes: {
              host_path: [{ name: "signal", mount_path: "/signal", host_path: signalDir }],
            },
          },
        },
        { workDir },
      );
      return { id, workDir, request };
    };
    const ended = await make("ended");
    const running = await make("running");
    const first = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    const handles = [await first.start(ended.request), await first.start(running.request)];
    await readUntil(first, ended.id, /before\n/);
    await readUntil(first, running.id, /before\n/);
    await first.close(); // colony goes away; the containers run on
    await writeFile(join(signalDir, "ended"), "");
    for (;;) {
      const c = await inspectUnit(api, ended.id);
      const state = await api.call<{ State: { Running: boolean } }>(
        "GET",
        `/containers/${c.Id}/json`,
      );
      if (!state.State.Running) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const second = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    try {
      // Ended while away: attach collects it, files first, and wait() has the result.
      assert.equal(await second.attach!(ended.request, handles[0]!), false);
      assert.equal((await second.wait(ended.id)).exitCode, 0);
      assert.equal(readFileSync(join(ended.workDir, "late.txt"), "utf8"), "late\n");
      assert.equal(readFileSync(join(ended.workDir, "early.txt"), "utf8"), "ended\n");
      // Still running: followed again, copied out when it ends.
      assert.equal(await second.attach!(running.request, handles[1]!), true);
      await writeFile(join(signalDir, "running"), "");
      assert.equal((await second.wait(running.id)).exitCode, 0);
      assert.equal(readFileSync(join(running.workDir, "late.txt"), "utf8"), "late\n");
      assert.equal(readFileSync(join(running.workDir, "early.txt"), "utf8"), "running\n");
      for (const id of [ended.id, running.id])
        assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${id}`]), []);
    } finally {
      await second.close();
    }
  });

  it("reaps orphans: collects ended containers, stops running ones the store says are finished", async () => {
    const ended = newId("orphan-ended");
    const running = newId("orphan-running");
    // The first one ends only once the test says so (a file in a bind-mounted directory),
    // that is after its executor went away.
    const signalDir = await tempRoot();
    const endedReq = req(
      ended,
      ["echo orphan-output", "while [ ! -f /signal/go ]; do sleep 0.05; done", "exit 3"],
      {
        container: {
          image: IMAGE,
          volumes: { host_path: [{ name: "signal", mount_path: "/signal", host_path: signalDir }] },
        },
      },
    );
    const runningReq = req(running, ["echo spinning", "sleep 300"]);
    const first = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    const endedHandle = await first.start(endedReq);
    await first.start(runningReq);
    await readUntil(first, running, /spinning\n/);
    await readUntil(first, ended, /orphan-output\n/);
    await first.close(); // both containers are now orphans
    await writeFile(join(signalDir, "go"), "");
    // Wait until the first one has ended on its own.
    for (let i = 0; i < 100; i++) {
      const [c] = await ownedContainers(api, [`colony.unit-id=${ended}`]);
      const state = c
        ? (await api.call<{ State: { Running: boolean } }>("GET", `/containers/${c.Id}/json`)).State
        : undefined;
      if (state && !state.Running) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const second = createDockerExecutor({
      owner: OWNER,
      reapIntervalMs: 0,
      killGraceMs: 1000,
      isExecutionLive: async (id) => id === ended, // the running one's task was finished elsewhere
    });
    try {
      let report = await second.reapOrphans();
      assert.deepEqual(report, { collected: [], stopped: [running] });
      assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${running}`]), []);
      // The ended one is left while its execution is live (an engine will attach to it)...
      assert.equal((await ownedContainers(api, [`colony.unit-id=${ended}`])).length, 1);
      const third = createDockerExecutor({
        owner: OWNER,
        reapIntervalMs: 0,
        isExecutionLive: async () => false,
      });
      report = await third.reapOrphans();
      await third.close();
      assert.deepEqual(report, { collected: [ended], stopped: [] });
      assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${ended}`]), []);
      assert.equal(readFileSync(join(endedReq.unitDir, "exit"), "utf8"), "3 -\n");
      assert.equal(readFileSync(join(endedReq.unitDir, "stdout"), "utf8"), "orphan-output\n");
      // ...and an attach after the reap answers with the recorded result.
      assert.equal(await second.attach!(endedReq, endedHandle), false);
      assert.equal((await second.wait(ended)).exitCode, 3);
    } finally {
      await second.close();
    }
  });

  it("runs a job through the engine: exit codes drive the DAG, outputs flow to later tasks", async () => {
    const dataDir = await tempRoot();
    const ex = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    const rt = await openEmbedded({ dataDir, executors: [ex], engine: { pollMs: 20 } });
    try {
      await rt.engine.start();
      const def = parseJobDefinition(`job_type: docker-dag
job_variables: {Greeting: hello}
tasks:
- task_type: build
  method: DOCKER
  container: {image: ${IMAGE}}
  script:
    - echo "::set-output name=Artifact::app-{{.Greeting}}.tar"
    - exit 3
  on_exit_code: {"3": deploy}
- task_type: deploy
  method: DOCKER
  container: {image: ${IMAGE}}
  script: ['test "{{.Artifact}}" = app-hello.tar && echo deployed {{.Artifact}}']
`);
      const job = await rt.engine.submit({ definition: def });
      const final = await rt.engine.waitFor(job.id);
      assert.equal(final.state, "COMPLETED");
      const view = await rt.engine.getJob(job.id);
      const deploy = view.tasks.find((t) => t.taskType === "deploy");
      assert.equal(deploy?.state, "COMPLETED");
      assert.equal(
        readFileSync(join(dataDir, "units", deploy!.id, "stdout"), "utf8"),
        "deployed app-hello.tar\n",
      );
      assert.equal(view.tasks.find((t) => t.taskType === "build")?.exitCode, 3);
    } finally {
      await rt.close({ cancelRunning: true });
    }
  });

  /** A two-task job: build writes artifacts in its container, use finds them in its own. */
  async function artifactsJob(workingDirectory: string | undefined) {
    const dataDir = await tempRoot();
    const ex = createDockerExecutor({ owner: OWNER, reapIntervalMs: 0 });
    const rt = await openEmbedded({ dataDir, executors: [ex], engine: { pollMs: 20 } });
    const wd = workingDirectory ? `\n  working_directory: ${workingDirectory}` : "";
    const inside = workingDirectory ?? "/colony/work";
    try {
      await rt.engine.start();
      const def = parseJobDefinition(`job_type: docker-artifacts
tasks:
- task_type: build
  method: DOCKER
  container: {image: ${IMAGE}}${wd}
  script:
    - mkdir -p out bin
    - head -c 70000 /dev/zero | tr '\\0' x > out/report.txt
    - printf '\\nsecond line\\n' >> out/report.txt
    - printf '#!/bin/sh\\necho tool-ran\\n' > bin/tool
    - chmod 0755 bin/tool
    - ln -s /etc/passwd out/link
    - echo "built in $(pwd) with COLONY_WORK_DIR=$COLONY_WORK_DIR"
  artifacts: {paths: [out/report.txt, bin/tool]}
  on_completed: use
- task_type: use
  method: DOCKER
  container: {image: ${IMAGE}}${wd}
  dependencies: [build]
  script:
    - test "$(pwd)" = "$COLONY_WORK_DIR"
    - test -x bin/tool
    - test "$(tail -n 1 out/report.txt)" = "second line"
    - 'echo "use: $(./bin/tool) $(( $(wc -c < out/report.txt) )) $(( $(head -n 1 out/report.txt | wc -c) )) in $COLONY_WORK_DIR"'
`);
      const job = await rt.engine.submit({ definition: def });
      const final = await rt.engine.waitFor(job.id);
      const view = await rt.engine.getJob(job.id);
      const build = view.tasks.find((t) => t.taskType === "build")!;
      const use = view.tasks.find((t) => t.taskType === "use")!;
      const out = (t: { id: string }) =>
        readFileSync(join(dataDir, "units", t.id, "stdout"), "utf8");
      assert.equal(final.state, "COMPLETED", `build: ${out(build)}\nuse: ${out(use)}`);
      const stored = await rt.store.asyncActions.listArtifacts({ taskExecutionId: build.id });
      assert.deepEqual(
        stored.items
          .map((a) => [a.name, a.size, a.metadata["executable"] ?? false])
          .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        [
          ["bin/tool", 24, true],
          ["out/report.txt", 70_013, false],
        ],
      );
      assert.match(
        out(build),
        new RegExp(`^built in ${inside} with COLONY_WORK_DIR=${inside}$`, "m"),
      );
      assert.match(
        out(build),
        /^colony: not copied out of the container \(only regular files and directories are\): [^\n]*out\/link \(symlink\)$/m,
      );
      assert.match(out(build), /^colony: stored 2 artifacts: bin\/tool, out\/report\.txt$/m);
      assert.equal(use.state, "COMPLETED");
      assert.match(out(use), /^colony: fetched 2 artifact files of build into /m);
      assert.match(out(use), new RegExp(`^use: tool-ran 70013 70001 in ${inside}$`, "m"));
      assert.deepEqual(await ownedContainers(api, [`colony.job-type=docker-artifacts`]), []);
    } finally {
      await rt.close({ cancelRunning: true });
    }
  }

  it("moves artifacts between DOCKER tasks: build's files land in use's container, nothing truncated", async () => {
    await artifactsJob(undefined);
  });

  it("moves artifacts between DOCKER tasks with working_directory: /srv/app", async () => {
    await artifactsJob("/srv/app");
  });

  it("copies the work dir with the archive API: an image's /tmp keeps its mode, failures say what failed", async () => {
    const host = join(await tempRoot(), "work");
    await mkdir(join(host, "sub"), { recursive: true });
    await writeFile(join(host, "sub", "dep.txt"), "from a dependency\n");
    const id = newId("tmp-work");
    const r = await executor.run(
      req(
        id,
        [
          "stat -c 'tmp %a' /tmp",
          "cat sub/dep.txt",
          "echo made > new.txt",
          'echo "cwd $(pwd) $COLONY_WORK_DIR"',
        ],
        { working_directory: "/tmp" },
        { workDir: host, env: { COLONY_WORK_DIR: host } },
      ),
    );
    assert.equal(r.exitCode, 0);
    const out = readFileSync(join(root, "units", id, "stdout"), "utf8");
    assert.match(out, /^tmp 1777$/m, "the image's /tmp is merged into, not replaced");
    assert.match(out, /^from a dependency$/m);
    assert.match(out, /^cwd \/tmp \/tmp$/m);
    // The result came after the files: they are on the host when wait() answers.
    assert.equal(readFileSync(join(host, "new.txt"), "utf8"), "made\n");

    // A host work dir that cannot be read: the task fails before it starts, and the
    // error is about the copy, not about reaching the engine.
    const unreadable = newId("unreadable-work");
    const missing = join(root, "no-such-dir");
    const e = await codeOf(executor.start(req(unreadable, ["true"], {}, { workDir: missing })));
    assert.equal(e.code, "COLONY_DOCKER_ARTIFACTS", e.message);
    assert.match(
      e.message,
      /copying its work dir .*no-such-dir .* into the container at \/colony\/work failed: ENOENT/,
    );
    assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${unreadable}`]), []);

    // The script removes its work dir: nothing to copy out, the task fails and says why.
    const gone = newId("gone-work");
    const g = await executor.run(
      req(gone, ['cd / && rm -rf "$COLONY_WORK_DIR"'], {}, { workDir: host }),
    );
    assert.equal(g.errorCode, "COLONY_DOCKER_ARTIFACTS");
    assert.equal(g.exitCode, null);
    assert.match(
      g.error ?? "",
      /out of the container .* failed \(the script exited with code 0\): the script removed \/colony\/work/,
    );
    assert.match(
      readFileSync(join(root, "units", gone, "stdout"), "utf8"),
      /^colony: copying the work dir/m,
    );
    assert.deepEqual(await ownedContainers(api, [`colony.unit-id=${gone}`]), []);
  });

  it("runs examples/containers.yaml with `colony run`: limits, outputs, a service sidecar", async () => {
    const dir = tempDir();
    try {
      const r = await runCli([
        "run",
        "examples/containers.yaml",
        "--param",
        `Image=${IMAGE}`,
        "--data-dir",
        dir.path,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^\[build\] building release in \/tmp$/m);
      assert.match(r.stdout, /^\[smoke-test\] ok-1\.2\.3$/m);
      assert.match(r.stderr, /job \d+ \(container-pipeline\) COMPLETED/);
      const left = await api.call<unknown[]>("GET", "/containers/json", {
        query: {
          all: 1,
          filters: JSON.stringify({ label: ["colony.job-type=container-pipeline"] }),
        },
      });
      assert.deepEqual(left, []);
    } finally {
      dir.remove();
    }
  });

  it("leaves no container and no network behind", async () => {
    await executor.close({ killRunning: true });
    assert.deepEqual(await ownedContainers(api), []);
    assert.deepEqual(await ownedNetworks(api), []);
    assert.ok(!existsSync(join(root, "never-there")));
  });
});

describe("work dir archives (no engine needed)", () => {
  const dirs: string[] = [];
  const scratch = async () => {
    const d = await mkdtemp(join(tmpdir(), "colony-archive-"));
    dirs.push(d);
    return d;
  };
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("extractArchive writes files and directories only, never outside its directory", async () => {
    const dir = await scratch();
    const target = join(dir, "target", "work");
    const pack = tarPack();
    const add = (header: Parameters<typeof pack.entry>[0], body?: string) =>
      new Promise<void>((resolve, reject) => {
        const done = (err?: Error | null) => (err ? reject(err) : resolve());
        if (body === undefined) pack.entry(header, done);
        else pack.entry(header, body, done);
      });
    const filling = (async () => {
      await add({ name: "work/", type: "directory", mode: 0o755 });
      await add({ name: "work/ok.txt", mode: 0o640 }, "safe\n");
      await add({ name: "work/bin/tool", mode: 0o755 }, "#!/bin/sh\n");
      await add({ name: "../escape", mode: 0o644 }, "escaped\n");
      await add({ name: "work/../../escape2", mode: 0o644 }, "escaped\n");
      await add({ name: `/${dir.slice(1)}/absolute`, mode: 0o644 }, "escaped\n");
      await add({ name: "work/link", type: "symlink", linkname: "/etc/passwd" });
      await add({ name: "work/link-dir", type: "symlink", linkname: dir });
      await add({ name: "work/link-dir/through", mode: 0o644 }, "escaped\n");
      await add({ name: "work/hard", type: "link", linkname: "work/ok.txt" });
      await add({ name: "work/fifo", type: "fifo" });
      pack.finalize();
    })();
    const report = await extractArchive(Readable.from(pack), target, { strip: 1 });
    await filling;
    assert.deepEqual(readdirSync(target).sort(), ["bin", "link-dir", "ok.txt"]);
    assert.equal(readFileSync(join(target, "ok.txt"), "utf8"), "safe\n");
    assert.equal(statSync(join(target, "ok.txt")).mode & 0o777, 0o640);
    assert.equal(statSync(join(target, "bin", "tool")).mode & 0o777, 0o755);
    // link-dir/through made a real directory under target, not a path through a link.
    assert.ok(lstatSync(join(target, "link-dir")).isDirectory());
    assert.equal(readFileSync(join(target, "link-dir", "through"), "utf8"), "escaped\n");
    assert.deepEqual(readdirSync(dir).sort(), ["target"], "nothing next to the target");
    assert.deepEqual(readdirSync(join(dir, "target")), ["work"]);
    assert.equal(report.files, 3);
    assert.deepEqual(report.skipped, [
      "../escape (outside the directory)",
      "work/../../escape2 (outside the directory)",
      `/${dir.slice(1)}/absolute (absolute path)`,
      "work/link (symlink)",
      "work/link-dir (symlink)",
      "work/hard (hard link)",
      "work/fifo (fifo)",
    ]);
  });

  it("the container work dir: working_directory, else /colony/work; only with a host work dir", () => {
    const r = (working_directory?: string, workDir: string | undefined = "/host/work") => {
      const request = requester("/data")(
        "x",
        ["true"],
        working_directory ? { working_directory } : {},
      );
      if (workDir) request.workDir = workDir;
      return containerWorkDir(request, taskContainerOptions(request.task));
    };
    assert.equal(r(undefined, ""), undefined);
    assert.equal(r("/srv/app", ""), undefined);
    assert.equal(r(), "/colony/work");
    assert.equal(r("/srv/app/"), "/srv/app");
    assert.throws(() => r("app"), /working_directory 'app' must be an absolute path/);
    assert.throws(() => r("/.."), /is the container's root/);
  });

  it("packWorkDir streams a host dir under the container path, modes kept, symlinks left out", async () => {
    const dir = await scratch();
    const host = join(dir, "host");
    await mkdir(join(host, "a", "empty"), { recursive: true });
    await writeFile(join(host, "a", "x.sh"), "echo x\n", { mode: 0o755 });
    await writeFile(join(host, "big"), Buffer.alloc(300_000, 1));
    await writeFile(join(host, "a", "empty.txt"), "");
    symlinkSync("/etc/passwd", join(host, "a", "link"));
    const skipped: string[] = [];
    const entries: [string, string | undefined, number, number][] = [];
    const ex = tarExtract();
    const reading = (async () => {
      for await (const entry of ex) {
        let size = 0;
        for await (const c of entry) size += (c as Buffer).length;
        entries.push([entry.header.name, entry.header.type, entry.header.mode & 0o777, size]);
      }
    })();
    await pipeline(
      packWorkDir(host, "/srv/app", { withRoot: true, skipped }),
      ex as unknown as NodeJS.WritableStream,
    );
    await reading;
    assert.deepEqual(entries, [
      ["srv/app/", "directory", 0o755, 0],
      ["srv/app/a/", "directory", 0o755, 0],
      ["srv/app/a/empty/", "directory", 0o755, 0],
      ["srv/app/a/empty.txt", "file", 0o644, 0],
      ["srv/app/a/x.sh", "file", 0o755, 7],
      ["srv/app/big", "file", 0o644, 300_000],
    ]);
    assert.deepEqual(skipped, ["a/link (symlink)"]);
  });
});
