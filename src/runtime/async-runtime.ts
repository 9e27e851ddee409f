/**
 * Async actions for one runtime (SPEC section 9): the artifact store, the job hook, the
 * FUNCTION executor, and the task lifecycle that ties them to the engine (a task's
 * working directory, its `dependencies` fetched before it starts, its `artifacts`
 * collected after it ends, and the hook's ERROR verdict). openEmbedded creates one; the
 * server gives the hook its URL and serves its routes; the library registers functions.
 */
import { hkdfSync } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ArtifactService } from "../artifacts/artifact-service.ts";
import type { ColonyEventBus } from "../core/events.ts";
import type { ExecutionRequest } from "../core/executor.ts";
import { noteInOutput } from "../core/outputs.ts";
import { count as plural } from "../core/text.ts";
import type { JobRequest, TaskExecution } from "../core/job-request.ts";
import type { TaskLifecycle } from "../engine/task-runner.ts";
import { CronScheduler } from "../engine/cron-scheduler.ts";
import { FunctionExecutor } from "../executors/function/function-executor.ts";
import { JobHook } from "../hook/job-hook.ts";
import type { Store, TaskFinish } from "../store/store.ts";

export interface AsyncRuntimeOptions {
  /** JOB_ORCHESTRATOR (default "colony"). */
  orchestrator?: string;
  /** Hook requests signed further than this from the server's clock are refused (default 5 min). */
  maxClockSkewMs?: number;
  /** Default lifetime of artifacts (default 30 days; 0 keeps them). */
  artifactExpiresAfterMs?: number;
  /** Largest artifact accepted (default 1 GiB). */
  artifactMaxBytes?: number;
  /** Zone of cron_trigger without CRON_TZ= (default: the machine's). */
  scheduleTimezone?: string;
}

export interface AsyncRuntime {
  hook: JobHook;
  artifacts: ArtifactService;
  functions: FunctionExecutor;
  /** Cron schedules of job types; they fire only once start() was called with schedules. */
  schedules: CronScheduler;
  /** The engine's per-execution environment (JOB_* once the hook has a URL). */
  extraEnv: (exec: TaskExecution, job: JobRequest) => Record<string, string>;
  lifecycle: TaskLifecycle;
  /**
   * Starts the artifact sweeper and, with `schedules`, the cron scheduler that submits to
   * `engine` (servers and the library; not `colony run`).
   */
  start(options: { engine: { wake(): void }; schedules: boolean }): Promise<void>;
  close(): Promise<void>;
}

/** A note in the task's output, where its user looks first. */
function note(request: ExecutionRequest, line: string): void {
  noteInOutput(join(request.unitDir, "stdout"), line);
}

export function createAsyncRuntime(input: {
  store: Store;
  dataDir: string;
  /** The data dir's id (core/disk.ts), recorded on the artifacts stored here. */
  serverId?: string;
  secretKey: Buffer;
  events: ColonyEventBus;
  options?: AsyncRuntimeOptions;
  log?: (message: string) => void;
}): AsyncRuntime {
  const { store, events } = input;
  const o = input.options ?? {};
  const urlKey = Buffer.from(
    hkdfSync("sha256", input.secretKey, "", "colony artifact download urls", 32),
  );
  const artifacts = new ArtifactService({
    store,
    dataDir: input.dataDir,
    urlKey,
    ...(input.serverId ? { serverId: input.serverId } : {}),
    ...(o.artifactExpiresAfterMs === undefined ? {} : { expiresAfterMs: o.artifactExpiresAfterMs }),
    ...(o.artifactMaxBytes === undefined ? {} : { maxBytes: o.artifactMaxBytes }),
    ...(input.log ? { log: input.log } : {}),
  });
  const hook = new JobHook({
    store,
    events,
    artifacts,
    orchestrator: o.orchestrator ?? "colony",
    dataDir: input.dataDir,
    keyMaster: Buffer.from(hkdfSync("sha256", input.secretKey, "", "colony job hook keys", 32)),
    ...(o.maxClockSkewMs === undefined ? {} : { maxClockSkewMs: o.maxClockSkewMs }),
  });
  const functions = new FunctionExecutor({ events });
  let engine: { wake(): void } | undefined;
  const schedules = new CronScheduler({
    store,
    events,
    engine: { wake: () => engine?.wake() },
    ...(o.scheduleTimezone ? { defaultTimezone: o.scheduleTimezone } : {}),
    ...(input.log ? { log: input.log } : {}),
  });

  /** The executions whose artifacts a task's `dependencies` name (the last run of each). */
  async function dependencyRuns(
    request: ExecutionRequest,
    job: JobRequest,
  ): Promise<{ ids: string[]; missing: string[] }> {
    const all = await store.listTaskExecutions(job.id);
    const ids: string[] = [];
    const missing: string[] = [];
    for (const dep of request.task.dependencies) {
      const done = all
        .filter(
          (e) => e.taskType === dep && e.jobAttempt === job.attempt && e.state !== "CANCELLED",
        )
        .filter((e) => e.state === "COMPLETED" || e.state === "FAILED")
        .at(-1);
      if (done) ids.push(done.id);
      else missing.push(dep);
    }
    return { ids, missing };
  }

  const lifecycle: TaskLifecycle = {
    beforeStart(request, execution, job) {
      const task = request.task;
      const paths = task.artifacts?.paths ?? [];
      if (paths.length === 0 && task.dependencies.length === 0) return undefined;
      if (request.movesArtifacts) {
        // It runs on another machine, whose agent fetches these through signed URLs and
        // uploads its artifacts through the hook (ant-agent.ts). Nothing goes into the
        // output file here: the agent's output stream owns it.
        if (execution.state !== "READY" || task.dependencies.length === 0) return undefined;
        return (async () => {
          const { ids } = await dependencyRuns(request, job);
          request.artifactDownloads = await artifacts.downloads(ids, hook.baseUrl ?? "");
        })();
      }
      const workDir = join(request.unitDir, "work");
      mkdirSync(workDir, { recursive: true, mode: 0o700 });
      request.workDir = workDir;
      request.env.COLONY_WORK_DIR = workDir;
      // Re-attached after a restart: its files are where it left them.
      if (execution.state !== "READY" || task.dependencies.length === 0) return undefined;
      return (async () => {
        const { ids, missing } = await dependencyRuns(request, job);
        for (const dep of missing) {
          note(
            request,
            `dependency ${dep} has not run in this attempt: no artifacts of it to fetch`,
          );
        }
        const count = await artifacts.fetch(ids, workDir);
        if (count > 0)
          note(
            request,
            `fetched ${plural(count, "artifact file")} of ${task.dependencies.join(", ")} into ${workDir}`,
          );
      })();
    },

    appendedOutput: (executionId) => hook.appendedOutput(executionId),

    beforeFinish(request, execution, _job, f) {
      const verdict = hook.verdict(execution.id, execution.hook);
      if (verdict !== undefined && f.state === "COMPLETED") {
        f.state = "FAILED";
        f.errorCode = "COLONY_HOOK_ERROR";
        f.errorMessage = verdict;
      }
      const paths = request.task.artifacts?.paths ?? [];
      // (A task whose agent moves its artifacts has no work dir here: they were uploaded.)
      if (paths.length === 0 || !request.workDir || f.state === "CANCELLED") return undefined;
      const workDir = request.workDir;
      return collect(request, execution, workDir, paths, f);
    },
  };

  async function collect(
    request: ExecutionRequest,
    execution: TaskExecution,
    workDir: string,
    paths: string[],
    f: TaskFinish,
  ): Promise<void> {
    try {
      const { stored, unmatched } = await artifacts.collect({
        workDir,
        paths,
        owner: {
          jobRequestId: execution.jobRequestId,
          taskExecutionId: execution.id,
          taskType: execution.taskType,
          ...(request.task.artifacts?.expiresAfterMs === undefined
            ? {}
            : { expiresAfterMs: request.task.artifacts.expiresAfterMs }),
        },
      });
      if (stored.length > 0)
        note(
          request,
          `stored ${plural(stored.length, "artifact")}: ${stored.map((a) => a.name).join(", ")}`,
        );
      for (const p of unmatched) note(request, `artifacts path '${p}' matched no file`);
    } catch (error) {
      note(
        request,
        `storing artifacts failed: ${error instanceof Error ? error.message : String(error)}`,
      );
      if (f.state === "COMPLETED") {
        f.state = "FAILED";
        f.errorCode = "COLONY_ARTIFACTS_FAILED";
        f.errorMessage = `storing its artifacts failed: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
  }

  return {
    hook,
    artifacts,
    functions,
    schedules,
    extraEnv: hook.taskEnv,
    lifecycle,
    async start(startOptions) {
      engine = startOptions.engine;
      artifacts.start();
      if (startOptions.schedules) await schedules.start();
    },
    async close() {
      await schedules.stop();
      hook.close();
      await artifacts.close();
    },
  };
}
