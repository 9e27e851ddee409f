/**
 * The KUBERNETES executor (SPEC section 10, seed 000 "Kubernetes"): runs a task's
 * composed script with `sh -c` in the main container of a pod built by pod-builder.ts.
 *
 * - start: creates the registry secret (when the ant has registry credentials), then the
 *   pod (restartPolicy Never, labelled with the unit id and owner; `fieldValidation:
 *   Strict` so the API server refuses any field it does not know).
 * - watch: the pod is watched (re-watched from its last resourceVersion when the watch
 *   ends); the main container's status drives everything: once it runs, its log is
 *   followed into `{unitDir}/stdout`; once it is terminated, its exit code is the
 *   task's (service containers may still run: the pod phase is not waited for). An
 *   image that cannot be pulled, or a container that cannot be created, fails the task.
 * - the end: the rest of the log is fetched (a follow that closed early loses nothing),
 *   the pod and secret are deleted, the exit is recorded in `{unitDir}/exit`.
 * - cancel: deletes the pod with the kill grace as its grace period (the kubelet sends
 *   SIGTERM, then SIGKILL); the result says killed.
 * - after a restart: attach finds the pod by its unit-id label and follows it again,
 *   skipping the log bytes already in the output file; reapOrphans deletes pods (and
 *   secrets) that no execution will come back for. A start of an execution an earlier
 *   colony process may have started and died before recording (`mayHaveStarted`)
 *   follows its pod the same way instead of making a second one.
 */
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { V1ContainerStatus, V1Pod } from "@kubernetes/client-node";
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
  taskContainerOptions,
  type ContainerExecutorOptions,
  type KubernetesConfig,
} from "../container-options.ts";
import { createKubeClient, type KubeClient, type WatchEvent } from "./kube-client.ts";
import {
  ANNOTATIONS,
  buildPod,
  LABELS,
  labelValue,
  podNameFor,
  registrySecret,
} from "./pod-builder.ts";
import { FinishedRetention, logStreamOf, resultOf } from "../execution-table.ts";

export interface KubernetesExecutorOptions extends ContainerExecutorOptions {
  /** The ant's `kubernetes:` config (seed 000). */
  config?: KubernetesConfig;
  /** A client to use instead of one built from the config (tests). */
  client?: KubeClient;
}

export interface KubernetesExecutionHandle extends ExecutionHandle {
  podName: string;
  namespace: string;
  container: string;
  outPath: string;
  secretName?: string;
}

export interface KubernetesReapReport {
  collected: string[];
  stopped: string[];
}

export interface KubernetesExecutor extends Executor {
  reapOrphans(): Promise<KubernetesReapReport>;
}

/** Waiting reasons after which the container will not start without a change. */
const FATAL_WAITING = new Set([
  "ErrImagePull",
  "ImagePullBackOff",
  "InvalidImageName",
  "ErrImageNeverPull",
  "CreateContainerConfigError",
  "CreateContainerError",
  "RunContainerError",
]);

interface Execution {
  id: string;
  unitDir: string;
  outPath: string;
  exitPath: string;
  namespace: string;
  podName: string;
  container: string;
  secretName?: string;
  created: boolean;
  done: PromiseWithResolvers<ExecutionResult>;
  result?: ExecutionResult;
  finishedAt?: number;
  waiters: number;
  delivered: boolean;
  cancelled: boolean;
  /** Aborts watches and log streams (close leaves the pod running). */
  streams: AbortController;
  watch?: AbortController;
}

function unknown(id: string): ExecutorError {
  return new ExecutorError(
    UNKNOWN_EXECUTION,
    `no execution '${id}' is running here (unknown, or it finished and its result was already delivered)`,
  );
}

function mainStatus(pod: V1Pod, container: string): V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((c) => c.name === container);
}

export function createKubernetesExecutor(
  options: KubernetesExecutorOptions = {},
): KubernetesExecutor {
  const config = options.config ?? {};
  const client = options.client ?? createKubeClient(config);
  const killGraceMs = options.killGraceMs ?? 10_000;
  const graceSeconds = Math.max(0, Math.ceil(killGraceMs / 1000));
  const owner = options.owner ?? "colony";
  const retainMs = options.retainFinishedMs ?? 10 * 60_000;
  const reapExitedAfterMs = options.reapExitedAfterMs ?? 30_000;
  const log = options.log ?? (() => undefined);
  const executions = new Map<string, Execution>();
  const reaping = new Map<string, Promise<void>>();
  let closed = false;

  const retention = new FinishedRetention(executions, retainMs);

  const reapIntervalMs = options.reapIntervalMs ?? 60_000;
  let reapTimer: NodeJS.Timeout | undefined;
  // Only with a cluster configured, or once this process ran (or attached to) a pod: a
  // colony that never uses KUBERNETES must not reach for a cluster.
  let used = config.host !== undefined;
  if (reapIntervalMs > 0) {
    reapTimer = setInterval(() => {
      if (!used) return;
      reapOrphans().catch((err: unknown) =>
        log(`kubernetes: reaping orphans failed: ${(err as Error).message}`),
      );
    }, reapIntervalMs);
    reapTimer.unref();
  }

  function assertOpen(): void {
    if (closed)
      throw new ExecutorError("COLONY_EXECUTOR_CLOSED", "the kubernetes executor is closed");
  }

  function newExecution(
    id: string,
    unitDir: string,
    namespace: string,
    podName: string,
    container: string,
  ): Execution {
    const done = Promise.withResolvers<ExecutionResult>();
    done.promise.catch(() => undefined);
    return {
      id,
      unitDir,
      outPath: join(unitDir, "stdout"),
      exitPath: join(unitDir, "exit"),
      namespace,
      podName,
      container,
      created: false,
      done,
      waiters: 0,
      delivered: false,
      cancelled: false,
      streams: new AbortController(),
    };
  }

  function finish(e: Execution, result: ExecutionResult): void {
    retention.settle(e, result);
  }

  async function removePod(e: Pick<Execution, "namespace" | "podName" | "secretName">, grace = 0) {
    await client.deletePod(e.namespace, e.podName, grace);
    if (e.secretName) await client.deleteSecret(e.namespace, e.secretName);
  }

  /** Appends the container's whole log minus what the output file already holds. */
  async function appendLog(
    outPath: string,
    ns: string,
    pod: string,
    container: string,
    follow: boolean,
    signal?: AbortSignal,
  ) {
    const stream = await client.log(ns, pod, container, follow);
    const abort = () => stream.destroy();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await pipeline(
        stream,
        new SkipBytes(await fileSize(outPath)),
        createWriteStream(outPath, { flags: "a", mode: 0o600 }),
      );
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  /**
   * Watches the pod until the main container terminates (or the pod is gone), following
   * its log meanwhile; then collects the log's rest, deletes the pod and settles.
   */
  async function follow(e: Execution): Promise<void> {
    const signal = e.streams.signal;
    let logs: Promise<void> | undefined;
    const startLogs = () => {
      logs ??= (async () => {
        // A follow the server closes early is resumed while the container runs.
        while (!signal.aborted && !terminated) {
          await appendLog(e.outPath, e.namespace, e.podName, e.container, true, signal).catch(
            () => undefined,
          );
          if (!terminated) await new Promise((r) => setTimeout(r, 200));
        }
      })();
    };
    let terminated: { exitCode: number | null; error?: string; errorCode?: string } | undefined;
    const ended = Promise.withResolvers<void>();

    const handle = (pod: V1Pod, deleted: boolean) => {
      if (terminated) return;
      const cs = mainStatus(pod, e.container);
      const waiting = cs?.state?.waiting;
      if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) {
        terminated = {
          exitCode: null,
          error: `container '${e.container}' of pod ${e.podName} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`,
          errorCode: "COLONY_POD_FAILED",
        };
        return ended.resolve();
      }
      if (cs?.state?.running || cs?.state?.terminated) startLogs();
      const t = cs?.state?.terminated;
      if (t) {
        terminated = {
          exitCode: t.exitCode,
          ...(t.exitCode !== 0 && t.reason && t.reason !== "Error" && t.reason !== "Completed"
            ? { error: `${t.reason}${t.message ? `: ${t.message}` : ""}` }
            : {}),
        };
        return ended.resolve();
      }
      if (deleted) {
        terminated = {
          exitCode: null,
          ...(e.cancelled
            ? {}
            : { error: `pod ${e.podName} was deleted`, errorCode: "COLONY_POD_LOST" }),
        };
        return ended.resolve();
      }
      if (pod.status?.phase === "Failed" || pod.status?.phase === "Succeeded") {
        terminated = {
          exitCode: null,
          error:
            `pod ${e.podName} ended (${pod.status.phase}) without its container running: ${pod.status.reason ?? ""} ${pod.status.message ?? ""}`.trim(),
          errorCode: "COLONY_POD_FAILED",
        };
        return ended.resolve();
      }
    };

    const watchLoop = async () => {
      while (!terminated && !signal.aborted) {
        const pod = await client.readPod(e.namespace, e.podName);
        if (!pod) {
          handle({ metadata: { name: e.podName } } as V1Pod, true);
          return;
        }
        handle(pod, false);
        if (terminated) return;
        const watchEnded = Promise.withResolvers<void>();
        e.watch = await client.watchPod(
          e.namespace,
          e.podName,
          pod.metadata?.resourceVersion,
          (ev: WatchEvent) => {
            if (ev.type === "ADDED" || ev.type === "MODIFIED") handle(ev.object, false);
            else if (ev.type === "DELETED") handle(ev.object, true);
            if (terminated) watchEnded.resolve();
          },
          () => watchEnded.resolve(),
        );
        const onAbort = () => watchEnded.resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        await Promise.race([watchEnded.promise, ended.promise]);
        signal.removeEventListener("abort", onAbort);
        e.watch.abort();
      }
    };

    let result: ExecutionResult;
    try {
      await Promise.race([watchLoop(), ended.promise]);
      if (!terminated) {
        if (closed || signal.aborted) return; // close(): the pod is left to a later attach
        terminated = {
          exitCode: null,
          error: "stopped watching the pod",
          errorCode: "COLONY_POD_LOST",
        };
      }
      const t = terminated as NonNullable<typeof terminated>;
      // The log: let the follow drain, then fetch what it may have missed.
      await logs;
      if (!signal.aborted) {
        await appendLog(e.outPath, e.namespace, e.podName, e.container, false, signal).catch(
          () => undefined,
        );
      }
      result = {
        exitCode: t.exitCode,
        killed: e.cancelled,
        ...(t.error && !e.cancelled ? { error: t.error } : {}),
        ...(t.errorCode && !e.cancelled ? { errorCode: t.errorCode } : {}),
      };
    } catch (err) {
      if (closed) return;
      result = {
        exitCode: null,
        killed: e.cancelled,
        error: `lost track of pod ${e.podName}: ${(err as Error).message}`,
        errorCode: "COLONY_POD_LOST",
      };
    }
    if (closed) return;
    await writeExitRecord(e.exitPath, result).catch(() => undefined);
    await removePod(e).catch((err: unknown) =>
      log(`kubernetes: deleting pod ${e.podName} failed: ${(err as Error).message}`),
    );
    finish(e, result);
  }

  /** attach() of the executor contract: the pod by its unit-id label (see the header). */
  async function attachPod(request: ExecutionRequest, handle: ExecutionHandle): Promise<boolean> {
    assertOpen();
    used = true;
    const id = request.executionId;
    if (executions.has(id))
      throw new ExecutorError(EXECUTION_EXISTS, `execution '${id}' is already known here`);
    await reaping.get(id)?.catch(() => undefined);
    const namespace =
      typeof handle["namespace"] === "string"
        ? handle["namespace"]
        : (config.namespace ?? (await client.namespace()));
    const recorded = async (e: Execution) => {
      const r = await readExitRecord(e.exitPath);
      if (!r) return false;
      executions.set(id, e);
      finish(e, r);
      return true;
    };
    const probe = newExecution(id, request.unitDir, namespace, "", "");
    if (await recorded(probe)) return false;
    const [pod] = await client.listPods(
      namespace,
      `${LABELS.unitId}=${id},${LABELS.owner}=${labelValue(owner)}`,
    );
    if (!pod?.metadata?.name) {
      await recorded(probe);
      return false;
    }
    const container =
      typeof handle["container"] === "string"
        ? handle["container"]
        : (pod.spec?.containers?.[0]?.name ?? "");
    const e = newExecution(id, request.unitDir, namespace, pod.metadata.name, container);
    if (typeof handle["outPath"] === "string") e.outPath = handle["outPath"];
    if (typeof handle["secretName"] === "string") e.secretName = handle["secretName"];
    e.created = true;
    executions.set(id, e);
    void follow(e);
    return true;
  }

  /**
   * A start of an execution an earlier colony process may have started and died before
   * recording (`mayHaveStarted`, or its exit is recorded): its recorded exit or its pod
   * is followed as attach() follows it, answered as the error start() throws (with the
   * handle while the pod runs); undefined when there is neither, and the start goes on.
   */
  async function adoptEarlier(
    request: ExecutionRequest,
  ): Promise<ExecutionExistsError | undefined> {
    const id = request.executionId;
    executions.delete(id);
    const running = await attachPod(request, {});
    const followed = executions.get(id);
    if (!followed) return undefined;
    return new ExecutionExistsError(
      `execution '${id}' was started by an earlier colony process (pod ${followed.podName || "gone"}); it is followed, not started again`,
      running
        ? {
            podName: followed.podName,
            namespace: followed.namespace,
            container: followed.container,
            outPath: followed.outPath,
          }
        : undefined,
    );
  }

  async function start(request: ExecutionRequest): Promise<KubernetesExecutionHandle> {
    assertOpen();
    used = true;
    const id = request.executionId;
    const exists = () =>
      new ExecutorError(
        EXECUTION_EXISTS,
        `execution '${id}' was already started; start a new attempt under a new execution id`,
      );
    if (executions.has(id)) throw exists();
    const reserved = newExecution(id, request.unitDir, "", "", "");
    executions.set(id, reserved);
    const e = reserved;
    let earlier: ExecutionExistsError | undefined;
    try {
      const created = await mkdir(request.unitDir, { recursive: true, mode: 0o700 });
      // Its unit dir was there: an earlier colony process may have started it.
      if (
        created === undefined &&
        (request.mayHaveStarted || (await readExitRecord(e.exitPath)) !== undefined)
      ) {
        earlier = await adoptEarlier(request);
      }
    } catch (err) {
      executions.delete(id);
      e.done.reject(err as Error);
      throw err;
    }
    if (earlier) throw earlier; // followed now: its entry stays
    if (request.mayHaveStarted && request.adoptOnly) abandonNotStarted(executions, id, e.done);
    if (!executions.has(id)) executions.set(id, e); // adoptEarlier found nothing
    try {
      const options = taskContainerOptions(request.task);
      const namespace = config.namespace ?? (await client.namespace());
      const hasCredentials = Boolean(config.registry?.username || config.registry?.password);
      const secretName = hasCredentials ? `${podNameFor(request, options)}-registry` : undefined;
      const built = buildPod({
        request,
        options,
        config: { ...config, namespace },
        owner,
        graceSeconds,
        ...(secretName ? { registrySecret: secretName } : {}),
      });
      for (const w of built.warnings)
        log(`kubernetes: task '${request.task.taskType}' (${id}): ${w}`);
      e.namespace = namespace;
      e.podName = built.name;
      e.container = built.mainContainer;
      if (secretName) {
        e.secretName = secretName;
        const labels = {
          [LABELS.managed]: "true",
          [LABELS.owner]: labelValue(owner),
          [LABELS.unitId]: id,
        };
        await client
          .createSecret(namespace, registrySecret(config, secretName, namespace, labels)!)
          .catch((err: unknown) => {
            // Left by an earlier start that died before its pod was made: the same secret.
            if (request.mayHaveStarted && (err as { httpStatus?: number }).httpStatus === 409)
              return;
            throw err;
          });
      }
      await writeFile(e.outPath, "", { flag: "a", mode: 0o600 });
      try {
        await client.createPod(namespace, built.pod);
      } catch (err) {
        if ((err as { httpStatus?: number }).httpStatus === 409) throw exists();
        throw err;
      }
      e.created = true;
    } catch (err) {
      executions.delete(id);
      if (e.secretName && !e.created)
        await client.deleteSecret(e.namespace, e.secretName).catch(() => undefined);
      e.done.reject(err as Error);
      throw err;
    }
    if (e.cancelled)
      void client.deletePod(e.namespace, e.podName, graceSeconds).catch(() => undefined);
    void follow(e);
    return {
      podName: e.podName,
      namespace: e.namespace,
      container: e.container,
      outPath: e.outPath,
      ...(e.secretName ? { secretName: e.secretName } : {}),
    };
  }

  function wait(id: string): Promise<ExecutionResult> {
    return resultOf(executions.get(id), () => unknown(id));
  }

  async function reapOrphans(): Promise<KubernetesReapReport> {
    const report: KubernetesReapReport = { collected: [], stopped: [] };
    const namespace = config.namespace ?? (await client.namespace());
    const pods = await client.listPods(namespace, `${LABELS.owner}=${labelValue(owner)}`);
    for (const pod of pods) {
      const unitId = pod.metadata?.labels?.[LABELS.unitId];
      const name = pod.metadata?.name;
      if (!unitId || !name || executions.has(unitId) || reaping.has(unitId)) continue;
      if (pod.metadata?.deletionTimestamp) continue; // being deleted already
      const live = options.isExecutionLive ? await options.isExecutionLive(unitId) : undefined;
      const container = pod.spec?.containers?.[0]?.name ?? "";
      const cs = mainStatus(pod, container);
      const t = cs?.state?.terminated;
      const unitDir = pod.metadata?.annotations?.[ANNOTATIONS.unitDir];
      const secretName = pod.spec?.imagePullSecrets?.find(
        (s) => s.name === `${name}-registry`,
      )?.name;
      const target = { namespace, podName: name, ...(secretName ? { secretName } : {}) };
      const job = (async () => {
        const record = async (result: ExecutionResult) => {
          if (!unitDir) return;
          const exitPath = join(unitDir, "exit");
          if (await readExitRecord(exitPath)) return;
          await mkdir(unitDir, { recursive: true, mode: 0o700 });
          await appendLog(join(unitDir, "stdout"), namespace, name, container, false).catch(
            () => undefined,
          );
          await writeExitRecord(exitPath, result);
        };
        if (!t) {
          if (live !== false) return;
          await record({ exitCode: null, killed: true });
          await removePod(target, graceSeconds);
          report.stopped.push(unitId);
          return;
        }
        if (live === true) return;
        const endedAt = t.finishedAt ? new Date(t.finishedAt).getTime() : 0;
        if (live === false || Date.now() - endedAt > reapExitedAfterMs) {
          await record({ exitCode: t.exitCode, killed: false });
          await removePod(target);
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

  return {
    methods: ["KUBERNETES"],
    adopts: true,

    isInstalled(signal?: AbortSignal) {
      return client.ping(signal);
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
      e.cancelled = true;
      if (!e.created) return; // start() deletes it right after creating it
      await client.deletePod(e.namespace, e.podName, graceSeconds);
    },

    async logStream(request: LogStreamRequest): Promise<Readable> {
      const e = executions.get(request.executionId);
      if (!e) throw unknown(request.executionId);
      return logStreamOf(e, request);
    },

    attach: attachPod,

    reapOrphans,

    async close(closeOptions) {
      if (closed) return;
      const running = [...executions.values()].filter((e) => !e.result && e.created);
      if (closeOptions?.killRunning) {
        for (const e of running) {
          e.cancelled = true;
          await client.deletePod(e.namespace, e.podName, graceSeconds).catch(() => undefined);
        }
        const deadline = new Promise((resolve) =>
          setTimeout(resolve, killGraceMs + 30_000).unref(),
        );
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
        e.watch?.abort();
        if (!e.result) {
          e.done.reject(
            new ExecutorError(
              "COLONY_EXECUTOR_CLOSED",
              `the kubernetes executor was closed while execution '${e.id}' was running; attach to it again with its handle`,
            ),
          );
        }
      }
    },
  };
}
