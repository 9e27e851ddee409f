/**
 * The DOCKER executor (SPEC section 10, seed 000 "Docker"): runs a task's composed
 * before/script/after script with `sh -c` in a container of the task's image, on the
 * Docker engine the ant is configured for (docker.host, default the local socket).
 *
 * - start: pulls per pull_policy, creates the per-task network and service sidecars
 *   (when the task has services), creates and starts the main container (labelled with
 *   the unit id, owner and unit dir; docker-init as PID 1 so SIGTERM reaches the script).
 * - output: the engine's log stream of the container, demultiplexed, appended live to
 *   `{unitDir}/stdout`. The log stream (not attach) is used because the engine keeps the
 *   log from the container's first byte: nothing written before colony listens is lost,
 *   and a restarted colony reads the same stream from where its file ends.
 * - the result: the exit code from the engine's wait; then the container, its services
 *   and network are removed and the exit is recorded in `{unitDir}/exit`.
 * - the work dir (tasks with artifacts or dependencies: request.workDir): the host dir
 *   is copied into the container (its working_directory, else /colony/work) between
 *   create and start, and copied back out after the exit, before the container is
 *   removed and before the result is delivered (so the lifecycle stores the artifacts
 *   from the host dir). Both with the engine's archive API (work-dir-archive.ts).
 * - cancel: stop (SIGTERM, the grace period, SIGKILL), then the same removal.
 * - after a restart: attach finds the container by its unit-id label and follows it, or
 *   collects the result of one that ended meanwhile; reapOrphans removes what belongs to
 *   executions nobody will attach to again. A start of an execution an earlier colony
 *   process may have started and died before recording (`mayHaveStarted`, or its exit
 *   is recorded) does the same instead of starting it twice, or, when its container
 *   never ran, removes what that start left and starts it.
 */
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createReadStream } from "node:fs";
import { ExecutionExistsError, ExecutorError } from "../../core/errors.ts";
import {
  EXECUTION_EXISTS,
  UNKNOWN_EXECUTION,
  abandonNotStarted,
  type ExecutionHandle,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
  type LogStreamRequest,
} from "../../core/executor.ts";
import { fileSize, readExitRecord, SkipBytes, writeExitRecord } from "../unit-files.ts";
import {
  maskIn,
  pullPolicyOf,
  taskContainerOptions,
  type ContainerExecutorOptions,
  type DockerConfig,
} from "../container-options.ts";
import {
  buildContainerPlan,
  LABELS,
  registryAuth,
  SCRIPT_PATH,
  tarOneFile,
  type ContainerPlan,
} from "./container-spec.ts";
import {
  createDockerApi,
  DockerApiError,
  DockerFrameDecoder,
  type DockerApi,
} from "./docker-api.ts";
import { extractArchive, packWorkDir } from "./work-dir-archive.ts";
import { FinishedRetention, logStreamOf, resultOf } from "../execution-table.ts";

export interface DockerExecutorOptions extends ContainerExecutorOptions {
  /** The ant's `docker:` config (registry, pull_policy, host, helper_image, environment). */
  config?: DockerConfig;
  /** A client to use instead of one built from config.host (tests). */
  api?: DockerApi;
}

export interface DockerExecutionHandle extends ExecutionHandle {
  containerId: string;
  containerName: string;
  outPath: string;
  networkId?: string;
}

export interface ReapReport {
  /** Unit ids whose ended containers were collected (exit recorded, then removed). */
  collected: string[];
  /** Unit ids whose running containers were stopped (the store says they are finished). */
  stopped: string[];
}

export interface DockerExecutor extends Executor {
  /** Collects and removes containers, services and networks no execution will come back for. */
  reapOrphans(): Promise<ReapReport>;
}

interface Execution {
  id: string;
  unitDir: string;
  outPath: string;
  exitPath: string;
  containerId?: string;
  /** The main container was started (cancel must stop it). */
  started: boolean;
  networkId?: string;
  serviceIds: string[];
  /** The task's work dir on the host and in the container (copied out after the exit). */
  workDir?: WorkDir;
  done: PromiseWithResolvers<ExecutionResult>;
  result?: ExecutionResult;
  finishedAt?: number;
  waiters: number;
  delivered: boolean;
  cancelled: boolean;
  stopping?: Promise<void>;
  /** Aborts the log and wait streams (close leaves the container running). */
  streams: AbortController;
}

interface WorkDir {
  host: string;
  container: string;
}

/** The error code of a work dir that could not be copied in or out. */
export const ARTIFACTS_ERROR = "COLONY_DOCKER_ARTIFACTS";

/** At most this many skipped names in the output's note. */
const SKIPPED_SHOWN = 20;

interface ContainerSummary {
  Id: string;
  Names?: string[];
  State: string;
  Created: number;
  Labels: Record<string, string>;
}

interface ContainerInspect {
  Id: string;
  Name: string;
  State: { Status: string; Running: boolean; ExitCode: number; FinishedAt: string };
  Config: { Labels: Record<string, string> };
}

function unknown(id: string): ExecutorError {
  return new ExecutorError(
    UNKNOWN_EXECUTION,
    `no execution '${id}' is running here (unknown, or it finished and its result was already delivered)`,
  );
}

/** A line in the task's output, where its user looks first. */
async function note(outPath: string, line: string): Promise<void> {
  await writeFile(outPath, `colony: ${line}\n`, { flag: "a", mode: 0o600 }).catch(() => undefined);
}

function skippedNote(what: string, skipped: string[]): string {
  const shown = skipped.slice(0, SKIPPED_SHOWN).join(", ");
  const more = skipped.length > SKIPPED_SHOWN ? ` and ${skipped.length - SKIPPED_SHOWN} more` : "";
  return `${what} (only regular files and directories are): ${shown}${more}`;
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/^(GET|PUT|HEAD) \S+: /, "");
}

async function drain(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export function createDockerExecutor(options: DockerExecutorOptions = {}): DockerExecutor {
  const config = options.config ?? {};
  const ownsApi = options.api === undefined;
  let api: DockerApi | undefined = options.api;
  // The config's host and TLS keys are DockerApiOptions' own.
  const getApi = () => (api ??= createDockerApi(config));
  const killGraceMs = options.killGraceMs ?? 10_000;
  const graceSeconds = Math.max(0, Math.ceil(killGraceMs / 1000));
  const owner = options.owner ?? "colony";
  const retainMs = options.retainFinishedMs ?? 10 * 60_000;
  const reapExitedAfterMs = options.reapExitedAfterMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  const secrets = [config.registry?.password];
  const executions = new Map<string, Execution>();
  /** Unit ids the reaper is collecting right now (attach waits for it). */
  const reaping = new Map<string, Promise<void>>();
  let closed = false;

  const retention = new FinishedRetention(executions, retainMs);

  const reapIntervalMs = options.reapIntervalMs ?? 60_000;
  let reapTimer: NodeJS.Timeout | undefined;
  if (reapIntervalMs > 0) {
    const tick = () => {
      reapOrphans().then(
        (r) => {
          if (r.collected.length + r.stopped.length > 0)
            log(
              `docker: reaped orphans (collected ${r.collected.join(", ") || "none"}; stopped ${r.stopped.join(", ") || "none"})`,
            );
        },
        () => undefined, // no engine here (yet): nothing to reap
      );
    };
    reapTimer = setInterval(tick, reapIntervalMs);
    reapTimer.unref();
    setTimeout(tick, Math.min(5000, reapIntervalMs)).unref();
  }

  function assertOpen(): void {
    if (closed) throw new ExecutorError("COLONY_EXECUTOR_CLOSED", "the docker executor is closed");
  }

  function newExecution(id: string, unitDir: string): Execution {
    const done = Promise.withResolvers<ExecutionResult>();
    done.promise.catch(() => undefined);
    return {
      id,
      unitDir,
      outPath: join(unitDir, "stdout"),
      exitPath: join(unitDir, "exit"),
      serviceIds: [],
      started: false,
      streams: new AbortController(),
      done,
      waiters: 0,
      delivered: false,
      cancelled: false,
    };
  }

  function finish(e: Execution, result: ExecutionResult): void {
    retention.settle(e, result);
  }

  async function removeContainer(id: string): Promise<void> {
    await getApi()
      .call("DELETE", `/containers/${id}`, { query: { force: 1, v: 1 } })
      .catch((err: unknown) => {
        if (!(err instanceof DockerApiError && err.httpStatus === 404)) throw err;
      });
  }

  async function removeNetwork(id: string): Promise<void> {
    await getApi()
      .call("DELETE", `/networks/${id}`)
      .catch((err: unknown) => {
        if (!(err instanceof DockerApiError && err.httpStatus === 404)) throw err;
      });
  }

  /** Removes everything labelled with this unit id (main, services, network). */
  async function removeUnit(unitId: string): Promise<void> {
    const filters = JSON.stringify({
      label: [`${LABELS.unitId}=${unitId}`, `${LABELS.owner}=${owner}`],
    });
    const containers = await getApi().call<ContainerSummary[]>("GET", "/containers/json", {
      query: { all: 1, filters },
    });
    await Promise.all(containers.map((c) => removeContainer(c.Id)));
    const networks = await getApi().call<{ Id: string }[]>("GET", "/networks", {
      query: { filters },
    });
    await Promise.all(networks.map((n) => removeNetwork(n.Id)));
  }

  async function cleanup(e: Execution): Promise<void> {
    const ids = [e.containerId, ...e.serviceIds].filter((x): x is string => x !== undefined);
    await Promise.all(ids.map((id) => removeContainer(id)));
    if (e.networkId) await removeNetwork(e.networkId);
  }

  /** Pulls per the pull policy; `never` with a missing image fails at once. */
  async function ensureImage(image: string): Promise<void> {
    const policy = pullPolicyOf(config);
    if (policy !== "always") {
      const present = await getApi()
        .call("GET", `/images/${encodeURIComponent(image)}/json`)
        .then(
          () => true,
          (err: unknown) => {
            if (err instanceof DockerApiError && err.httpStatus === 404) return false;
            throw err;
          },
        );
      if (present) return;
      if (policy === "never") {
        throw new ExecutorError(
          "COLONY_IMAGE_NOT_PRESENT",
          `image '${image}' is not on the Docker engine at ${getApi().describe} and pull_policy is never; ` +
            `load it there (docker pull/load/import) or set docker.registry.pull_policy: if-not-present`,
        );
      }
    }
    const auth = registryAuth(config, image);
    const res = await getApi()
      .stream("POST", "/images/create", {
        query: {
          fromImage: image,
          ...(image.includes("@") || /:[^/]+$/.test(image) ? {} : { tag: "latest" }),
        },
        ...(auth ? { headers: { "x-registry-auth": auth } } : {}),
      })
      .catch((err: unknown) => {
        throw new ExecutorError(
          "COLONY_IMAGE_PULL_FAILED",
          maskIn(`pulling image '${image}' failed: ${(err as Error).message}`, secrets),
          { retryable: true },
        );
      });
    // Progress is a stream of JSON lines; a failure is a line with `error`, under HTTP 200.
    const text = await drain(res);
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      let m: { error?: string; errorDetail?: { message?: string } };
      try {
        m = JSON.parse(line) as typeof m;
      } catch {
        continue;
      }
      if (m.error) {
        throw new ExecutorError(
          "COLONY_IMAGE_PULL_FAILED",
          maskIn(`pulling image '${image}' failed: ${m.errorDetail?.message ?? m.error}`, secrets),
          { retryable: true },
        );
      }
    }
  }

  /**
   * Follows the container's log into the output file (skipping what it already holds),
   * waits for its exit, removes what the task created and records the result.
   */
  async function follow(e: Execution, skip: number): Promise<void> {
    const cid = e.containerId!;
    let result: ExecutionResult;
    try {
      const signal = e.streams.signal;
      const logs = getApi().stream("GET", `/containers/${cid}/logs`, {
        query: { follow: 1, stdout: 1, stderr: 1 },
        signal,
      });
      const waited = getApi()
        .stream("POST", `/containers/${cid}/wait`, { query: { condition: "not-running" }, signal })
        .then(drain)
        .then(
          (text) => JSON.parse(text) as { StatusCode: number; Error?: { Message?: string } | null },
        );
      waited.catch(() => undefined);
      try {
        const res = await logs;
        const out = createWriteStream(e.outPath, { flags: "a", mode: 0o600 });
        await pipeline(res, new DockerFrameDecoder(), new SkipBytes(skip), out);
      } catch (err) {
        if (closed) return; // close(): the container is left to a later attach
        // A log driver that cannot be read back (none, syslog...) loses the output, not
        // the result: say so in the output and go on to the exit code.
        await writeFile(
          e.outPath,
          `colony: the container's log could not be read: ${(err as Error).message}\n`,
          { flag: "a" },
        ).catch(() => undefined);
      }
      const w = await waited;
      result = {
        exitCode: w.StatusCode,
        killed: e.cancelled,
        ...(w.Error?.Message ? { error: w.Error.Message } : {}),
      };
    } catch (err) {
      if (closed) return; // close() rejected the waiters; the container is left to a later attach
      result = {
        exitCode: null,
        killed: e.cancelled,
        error: `lost track of container ${cid.slice(0, 12)}: ${(err as Error).message}`,
        errorCode: "COLONY_DOCKER_LOST",
      };
    }
    await settle(e, result);
  }

  /**
   * Copies the work dir out (when the task has one and was not cancelled), records the
   * exit, removes the containers and network, then delivers the result: whoever gets
   * the result finds the files on the host.
   */
  async function settle(e: Execution, result: ExecutionResult): Promise<void> {
    await e.stopping?.catch(() => undefined);
    if (e.workDir && e.containerId && e.started && !e.cancelled && result.exitCode !== null) {
      result = await copyOut(e.containerId, e.workDir, e.outPath, result, e.streams.signal);
      // close() during the copy: the container is left (with no exit recorded) to a
      // later attach, which copies again.
      if (closed) return;
    }
    await writeExitRecord(e.exitPath, result).catch(() => undefined);
    try {
      await cleanup(e);
    } catch (err) {
      log(`docker: removing the containers of ${e.id} failed: ${(err as Error).message}`);
    }
    finish(e, result);
  }

  /** Whether the container has `path`: undefined when it does not, else whether it is a directory. */
  async function statInContainer(cid: string, path: string): Promise<boolean | undefined> {
    try {
      const res = await getApi().stream("HEAD", `/containers/${cid}/archive`, { query: { path } });
      res.resume();
      const header = res.headers["x-docker-container-path-stat"];
      if (typeof header !== "string") return true;
      const stat = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as {
        mode?: number;
        linkTarget?: string;
      };
      // Go's os.FileMode: the directory bit is 1 << 31; a symlink leads somewhere that is.
      const mode = stat.mode ?? 0;
      return Math.floor(mode / 2 ** 31) % 2 === 1 || Boolean(stat.linkTarget);
    } catch (err) {
      if (err instanceof DockerApiError && err.httpStatus === 404) return undefined;
      throw err;
    }
  }

  /** Puts the host work dir's files into the created (not yet started) container. */
  async function copyIn(e: Execution, cid: string, request: ExecutionRequest, w: WorkDir) {
    try {
      const existing = await statInContainer(cid, w.container);
      if (existing === false) {
        throw new Error(`${w.container} is a file in the image, not a directory`);
      }
      const skipped: string[] = [];
      await getApi().call("PUT", `/containers/${cid}/archive`, {
        query: { path: "/" },
        headers: { "content-type": "application/x-tar" },
        upload: packWorkDir(w.host, w.container, { withRoot: existing === undefined, skipped }),
      });
      if (skipped.length > 0)
        await note(e.outPath, skippedNote("not copied into the container", skipped));
    } catch (err) {
      throw new ExecutorError(
        ARTIFACTS_ERROR,
        `DOCKER task '${request.task.taskType}': copying its work dir ${w.host} (its dependencies' artifacts) into the container at ${w.container} failed: ${messageOf(err)}; ` +
          `check that working_directory names a directory the image can hold and that the Docker engine at ${getApi().describe} answers, then retry the task`,
        { retryable: err instanceof ExecutorError && err.retryable, cause: err },
      );
    }
  }

  /**
   * Copies the container's work dir into the host work dir after the exit. A failure
   * fails the task (its artifacts would be missing), with the exit code in the message.
   */
  async function copyOut(
    cid: string,
    w: WorkDir,
    outPath: string,
    result: ExecutionResult,
    signal?: AbortSignal,
  ): Promise<ExecutionResult> {
    try {
      const res = await getApi().stream("GET", `/containers/${cid}/archive`, {
        query: { path: w.container },
        ...(signal ? { signal } : {}),
      });
      const report = await extractArchive(res, w.host, { strip: 1 });
      if (report.skipped.length > 0)
        await note(outPath, skippedNote("not copied out of the container", report.skipped));
      return result;
    } catch (err) {
      const how = result.exitCode === null ? "ended" : `exited with code ${result.exitCode}`;
      const gone =
        err instanceof DockerApiError &&
        err.httpStatus === 404 &&
        !/no such container/i.test(err.message)
          ? `the script removed ${w.container} (keep the working directory; its artifacts are read from there)`
          : `${messageOf(err)}; check the Docker engine at ${getApi().describe} and the space left in colony's data dir, then retry the task`;
      const error = `copying the work dir ${w.container} out of the container into ${w.host} failed (the script ${how}): ${gone}`;
      await note(outPath, error);
      return { exitCode: null, killed: result.killed, error, errorCode: ARTIFACTS_ERROR };
    }
  }

  async function createContainer(name: string, body: unknown, platform?: string): Promise<string> {
    const r = await getApi().call<{ Id: string }>("POST", "/containers/create", {
      query: { name, ...(platform ? { platform } : {}) },
      body,
    });
    return r.Id;
  }

  async function launch(
    e: Execution,
    request: ExecutionRequest,
    plan: ContainerPlan,
  ): Promise<void> {
    const images = [...new Set([plan.image, ...plan.services.map((s) => s.image)])];
    await Promise.all(images.map((image) => ensureImage(image)));
    if (plan.network) {
      const n = await getApi().call<{ Id: string }>("POST", "/networks/create", {
        body: { Name: plan.network.name, CheckDuplicate: true, Labels: plan.network.labels },
      });
      e.networkId = n.Id;
    }
    for (const s of plan.services) {
      if (e.cancelled) return;
      const sid = await createContainer(s.containerName, s.body);
      e.serviceIds.push(sid);
      await getApi().call("POST", `/containers/${sid}/start`);
    }
    if (e.cancelled) return;
    try {
      e.containerId = await createContainer(plan.name, plan.body);
    } catch (err) {
      if (err instanceof DockerApiError && err.httpStatus === 409) {
        throw new ExecutorError(
          EXECUTION_EXISTS,
          `execution '${e.id}' was already started (container ${plan.name} exists); start a new attempt under a new execution id`,
        );
      }
      throw err;
    }
    if (plan.scriptFile !== undefined) {
      await getApi().call("PUT", `/containers/${e.containerId}/archive`, {
        query: { path: "/" },
        headers: { "content-type": "application/x-tar" },
        raw: tarOneFile(SCRIPT_PATH, plan.scriptFile),
      });
    }
    if (plan.workDir && request.workDir) {
      e.workDir = { host: request.workDir, container: plan.workDir };
      await copyIn(e, e.containerId, request, e.workDir);
    }
    let stdin: Socket | undefined;
    if (request.stdinPath) {
      stdin = await getApi().hijack(`/containers/${e.containerId}/attach`, {
        query: { stream: 1, stdin: 1, stdout: 0, stderr: 0 },
      });
    }
    if (e.cancelled) {
      stdin?.destroy();
      return;
    }
    await getApi()
      .call("POST", `/containers/${e.containerId}/start`)
      .catch((err: unknown) => {
        throw new ExecutorError(
          "COLONY_CONTAINER_START_FAILED",
          `the Docker engine could not start the container of task '${request.task.taskType}' (image ${plan.image}): ${(err as Error).message.replace(/^POST \S+: \d+ /, "")}`,
        );
      });
    e.started = true;
    if (e.cancelled) void stop(e).catch(() => undefined); // cancelled while it was starting
    if (stdin && request.stdinPath) {
      const sock = stdin;
      sock.on("error", () => undefined);
      sock.resume(); // nothing to read (stdout and stderr come from the log)
      pipeline(createReadStream(request.stdinPath), sock, { end: false })
        .then(() => sock.end())
        .catch(() => sock.destroy());
    }
  }

  /** attach() of the executor contract (see the header: after a restart). */
  async function attachUnit(request: ExecutionRequest, handle: ExecutionHandle): Promise<boolean> {
    assertOpen();
    const id = request.executionId;
    if (executions.has(id)) {
      throw new ExecutorError(EXECUTION_EXISTS, `execution '${id}' is already known here`);
    }
    await reaping.get(id)?.catch(() => undefined);
    const e = newExecution(id, request.unitDir);
    if (typeof handle["outPath"] === "string") e.outPath = handle["outPath"];
    const recorded = async () => {
      const r = await readExitRecord(e.exitPath);
      if (!r) return false;
      executions.set(id, e);
      finish(e, r);
      return true;
    };
    if (await recorded()) return false;
    const [main] = await unitContainers(id);
    if (!main) {
      await recorded();
      return false;
    }
    const c = await getApi().call<ContainerInspect>("GET", `/containers/${main.Id}/json`);
    e.containerId = c.Id;
    if (typeof handle["networkId"] === "string") e.networkId = handle["networkId"];
    // Containers made before work dirs were copied carry no label: nothing to copy out.
    const containerDir = c.Config.Labels[LABELS.workDir];
    if (request.workDir && containerDir) {
      e.workDir = { host: request.workDir, container: containerDir };
    }
    if (!c.State.Running) {
      const result = await collect(id, c, false, e.workDir?.host);
      executions.set(id, e);
      finish(e, result);
      return false;
    }
    e.started = true;
    executions.set(id, e);
    // Services and network are found by label when the unit is removed.
    const services = await getApi().call<ContainerSummary[]>("GET", "/containers/json", {
      query: {
        all: 1,
        filters: JSON.stringify({ label: [`${LABELS.unitId}=${id}`, `${LABELS.role}=service`] }),
      },
    });
    e.serviceIds = services.map((s) => s.Id);
    if (!e.networkId) {
      const nets = await getApi().call<{ Id: string }[]>("GET", "/networks", {
        query: { filters: JSON.stringify({ label: [`${LABELS.unitId}=${id}`] }) },
      });
      if (nets[0]) e.networkId = nets[0].Id;
    }
    void follow(e, await fileSize(e.outPath));
    return true;
  }

  /**
   * A start of an execution an earlier colony process may have started and died before
   * recording (see start()). A recorded exit or a main container that ran is followed as
   * attach() follows it (the error start() throws then carries the handle, when it still
   * runs); what a start that died before its container ran left behind is removed, and
   * the start goes on (undefined).
   */
  async function adoptEarlier(
    request: ExecutionRequest,
    e: Execution,
  ): Promise<ExecutionExistsError | undefined> {
    const id = request.executionId;
    const [main] = await unitContainers(id);
    const ran = main ? main.State !== "created" : (await readExitRecord(e.exitPath)) !== undefined;
    if (!ran) {
      await removeUnit(id);
      return undefined;
    }
    executions.delete(id);
    const running = await attachUnit(request, {});
    const followed = executions.get(id);
    return new ExecutionExistsError(
      `execution '${id}' was started by an earlier colony process (container ` +
        `${main?.Names?.[0]?.replace(/^\//, "") ?? "gone"}); it is followed, not started again`,
      running && followed?.containerId
        ? { containerId: followed.containerId, outPath: followed.outPath }
        : undefined,
    );
  }

  async function start(request: ExecutionRequest): Promise<DockerExecutionHandle> {
    assertOpen();
    const id = request.executionId;
    const exists = () =>
      new ExecutorError(
        EXECUTION_EXISTS,
        `execution '${id}' was already started; start a new attempt under a new execution id`,
      );
    if (executions.has(id)) throw exists();
    const e = newExecution(id, request.unitDir);
    executions.set(id, e);
    let plan: ContainerPlan;
    let earlier: ExecutionExistsError | undefined;
    try {
      const created = await mkdir(request.unitDir, { recursive: true, mode: 0o700 });
      // Its unit dir was there: an earlier colony process may have started it.
      if (
        created === undefined &&
        (request.mayHaveStarted || (await readExitRecord(e.exitPath)) !== undefined)
      ) {
        earlier = await adoptEarlier(request, e);
      }
    } catch (err) {
      executions.delete(id);
      e.done.reject(err as Error);
      throw err;
    }
    if (earlier) throw earlier; // followed now: its entry stays
    if (request.mayHaveStarted && request.adoptOnly) abandonNotStarted(executions, id, e.done);
    try {
      plan = buildContainerPlan({
        request,
        options: taskContainerOptions(request.task),
        config,
        owner,
      });
      await writeFile(e.outPath, "", { flag: "a", mode: 0o600 });
      await launch(e, request, plan);
    } catch (err) {
      executions.delete(id);
      await cleanup(e).catch(() => undefined);
      e.done.reject(err as Error);
      throw err;
    }
    if (!e.started) {
      // Cancelled while starting: nothing ran.
      const result = {
        exitCode: null,
        killed: true,
        error: "cancelled before the container started",
      };
      await settle(e, result);
      return { containerId: e.containerId ?? "", containerName: plan.name, outPath: e.outPath };
    }
    void follow(e, 0);
    return {
      containerId: e.containerId ?? "",
      containerName: plan.name,
      outPath: e.outPath,
      ...(e.networkId ? { networkId: e.networkId } : {}),
    };
  }

  function wait(id: string): Promise<ExecutionResult> {
    return resultOf(executions.get(id), () => unknown(id));
  }

  function stop(e: Execution): Promise<void> {
    e.cancelled = true;
    // Not started yet: launch() sees `cancelled` and stops it right after its start.
    if (!e.started || e.result) return Promise.resolve();
    e.stopping ??= getApi()
      .call("POST", `/containers/${e.containerId}/stop`, {
        query: { t: graceSeconds },
        timeoutMs: killGraceMs + 60_000,
      })
      .then(
        () => undefined,
        (err: unknown) => {
          // 304: already stopped; 404: already gone.
          if (err instanceof DockerApiError && (err.httpStatus === 304 || err.httpStatus === 404))
            return;
          throw err;
        },
      );
    return e.stopping;
  }

  async function unitContainers(unitId?: string): Promise<ContainerSummary[]> {
    const label = [`${LABELS.owner}=${owner}`, `${LABELS.role}=main`];
    if (unitId) label.push(`${LABELS.unitId}=${unitId}`);
    return getApi().call<ContainerSummary[]>("GET", "/containers/json", {
      query: { all: 1, filters: JSON.stringify({ label }) },
    });
  }

  /**
   * Appends the rest of an ended container's log, copies its work dir out (when given
   * the host dir: an attach; the reaper's containers have no one waiting for files),
   * records its exit and removes its unit.
   */
  async function collect(
    unitId: string,
    c: ContainerInspect,
    killed: boolean,
    hostWorkDir?: string,
  ): Promise<ExecutionResult> {
    const unitDir = c.Config.Labels[LABELS.unitDir];
    let result: ExecutionResult = { exitCode: c.State.ExitCode, killed };
    if (unitDir) {
      const outPath = join(unitDir, "stdout");
      const exitPath = join(unitDir, "exit");
      if (!(await readExitRecord(exitPath))) {
        await mkdir(unitDir, { recursive: true, mode: 0o700 });
        const res = await getApi().stream("GET", `/containers/${c.Id}/logs`, {
          query: { stdout: 1, stderr: 1 },
        });
        await pipeline(
          res,
          new DockerFrameDecoder(),
          new SkipBytes(await fileSize(outPath)),
          createWriteStream(outPath, { flags: "a", mode: 0o600 }),
        );
        const container = c.Config.Labels[LABELS.workDir];
        if (hostWorkDir && container && !killed) {
          result = await copyOut(c.Id, { host: hostWorkDir, container }, outPath, result);
        }
        await writeExitRecord(exitPath, result);
      }
    }
    await removeUnit(unitId);
    return result;
  }

  async function reapOrphans(): Promise<ReapReport> {
    const report: ReapReport = { collected: [], stopped: [] };
    const all = await getApi().call<ContainerSummary[]>("GET", "/containers/json", {
      query: { all: 1, filters: JSON.stringify({ label: [`${LABELS.owner}=${owner}`] }) },
    });
    const units = new Map<string, ContainerSummary[]>();
    for (const c of all) {
      const u = c.Labels[LABELS.unitId];
      if (u && !executions.has(u) && !reaping.has(u)) units.set(u, [...(units.get(u) ?? []), c]);
    }
    for (const [unitId, list] of units) {
      const main = list.find((c) => c.Labels[LABELS.role] === "main");
      const live = options.isExecutionLive ? await options.isExecutionLive(unitId) : undefined;
      if (executions.has(unitId) || reaping.has(unitId)) continue;
      const job = (async () => {
        if (!main) {
          // Services or a network whose main container never came: a start that died.
          const oldest = Math.min(...list.map((c) => c.Created)) * 1000;
          if (live === false || Date.now() - oldest > reapExitedAfterMs) {
            await removeUnit(unitId);
            report.collected.push(unitId);
          }
          return;
        }
        const c = await getApi().call<ContainerInspect>("GET", `/containers/${main.Id}/json`);
        if (c.State.Running) {
          if (live !== false) return;
          await getApi()
            .call("POST", `/containers/${c.Id}/stop`, {
              query: { t: graceSeconds },
              timeoutMs: killGraceMs + 60_000,
            })
            .catch(() => undefined);
          const after = await getApi().call<ContainerInspect>("GET", `/containers/${c.Id}/json`);
          await collect(unitId, after, true);
          report.stopped.push(unitId);
          return;
        }
        if (live === true) return; // an engine will attach and collect it
        const endedAt = Date.parse(c.State.FinishedAt);
        const ended = Number.isFinite(endedAt) && endedAt > 0 ? endedAt : main.Created * 1000;
        if (live === false || Date.now() - ended > reapExitedAfterMs) {
          await collect(unitId, c, false);
          report.collected.push(unitId);
        }
      })();
      reaping.set(unitId, job);
      try {
        await job;
      } finally {
        reaping.delete(unitId);
      }
    }
    return report;
  }

  const executor: DockerExecutor = {
    methods: ["DOCKER"],
    adopts: true,

    async isInstalled(signal?: AbortSignal) {
      try {
        const pong = await getApi().call<string>("GET", "/_ping", {
          timeoutMs: 5000,
          ...(signal ? { signal } : {}),
        });
        return String(pong).trim() === "OK";
      } catch (err) {
        // Why, for whoever asked (`colony ant` checks the methods it offers at start).
        log(`the Docker engine cannot be used: ${(err as Error).message}`);
        return false;
      }
    },

    start,
    wait,

    async run(request) {
      await start(request);
      return wait(request.executionId);
    },

    async cancel(id) {
      const e = executions.get(id);
      if (!e || e.result) throw unknown(id);
      if (e.cancelled) return;
      await stop(e);
    },

    async logStream(request: LogStreamRequest): Promise<Readable> {
      const e = executions.get(request.executionId);
      if (!e) throw unknown(request.executionId);
      return logStreamOf(e, request);
    },

    attach: attachUnit,

    reapOrphans,

    async close(closeOptions) {
      if (closed) return;
      const running = [...executions.values()].filter((e) => !e.result && e.containerId);
      if (closeOptions?.killRunning) {
        await Promise.all(running.map((e) => stop(e).catch(() => undefined)));
        const deadline = new Promise((resolve) => setTimeout(resolve, 30_000).unref());
        await Promise.race([
          Promise.all(running.map((e) => e.done.promise.catch(() => undefined))),
          deadline,
        ]);
      }
      closed = true;
      retention.close();
      if (reapTimer) clearInterval(reapTimer);
      for (const e of executions.values()) {
        e.streams.abort();
        if (!e.result) {
          e.done.reject(
            new ExecutorError(
              "COLONY_EXECUTOR_CLOSED",
              `the docker executor was closed while execution '${e.id}' was running; ` +
                "attach to it again with its handle",
            ),
          );
        }
      }
      if (ownsApi) api?.close();
    },
  };
  return executor;
}
