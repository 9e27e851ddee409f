/**
 * The `colony ant` agent (SPEC section 5): a full ant on another machine. It connects to
 * a server's /ws/ants, registers its methods, tags and capacity, and runs the tasks it
 * is sent with the same executors as the server's built-in ant (SHELL, HTTP_*), in its
 * own data dir (`{data dir}/units/{id}/stdout`).
 *
 * Protocol beyond the seed's (docs/ants.md): the registration carries `protocol:
 * colony-ant/1`, a `session` (random per agent process) and `running` (the task ids it
 * holds); the agent streams each task's output as `{type: "output", task_execution_id,
 * offset, data}` frames (base64) while it runs, then the TaskResponse; the server
 * answers `registered` (with the byte offsets it has of the tasks it wants back),
 * `cancel` and `ack` frames.
 *
 * A dropped connection is retried with back-off; tasks keep running meanwhile, and on
 * reconnect the agent resends the output the server is missing and the results it did
 * not acknowledge. Tasks the server no longer wants are stopped after a minute.
 */
import { randomUUID } from "node:crypto";
import { appendFileSync, mkdirSync } from "node:fs";
import { stat } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import WebSocket from "ws";
import {
  ARTIFACT_STORE,
  TASK_ARTIFACTS_PROPERTY,
  artifactName,
  inside,
  matchArtifactFiles,
  placeArtifact,
} from "../artifacts/artifact-service.ts";
import {
  completedResult,
  ExecutorRegistry,
  type ArtifactDownload,
  type ExecutionRequest,
  type ExecutionResult,
  type Executor,
} from "../core/executor.ts";
import type { DockerConfig, KubernetesConfig } from "../executors/container-options.ts";
import { hookCredentials, uploadFile } from "../hook/hook-client.ts";
import { createContainerExecutor } from "../runtime/container-executors.ts";
import type { Method } from "../core/job-definition.ts";
import { followFile, notifyDone } from "../core/output-follow.ts";
import type { Dispatcher } from "undici";
import { proxiedDispatcher, succeeded, undici } from "../core/http-request.ts";
import { proxiesFromEnv, type Proxies } from "../core/proxies.ts";
import { noteInOutput } from "../core/outputs.ts";
import { count } from "../core/text.ts";
import { createHttpExecutor, type HttpTls } from "../executors/http/http-executor.ts";
import { createShellExecutor } from "../executors/shell/shell-executor.ts";
import { antsEndpoint } from "../worker/endpoint.ts";
import { antSocketOptions, backoff } from "../worker/worker-common.ts";
import {
  AGENT_PROTOCOL,
  executionRequestOf,
  parseJsonFrame,
  parseServerFrame,
  parseTaskRequest,
  responseFor,
  type ResponseStatus,
  type TaskRequest,
  type TaskResponse,
} from "./task-request.ts";

/**
 * The longest wait between two reconnect attempts: under the server's reconnect grace
 * (DEFAULT_RECONNECT_GRACE_MS), so that after a server restart, however long the server
 * was down, the agent is back before the tasks it runs are given up and run elsewhere.
 */
export const RECONNECT_MAX_MS = 5_000;

export interface AntAgentOptions {
  /** The server: http(s)://host:port or ws(s)://host:port[/ws/ants]. */
  server: string;
  /** A token with role ant. */
  token: string;
  antId?: string;
  tags?: string[];
  /** Methods to offer (default: every method its executors serve). */
  methods?: Method[];
  /** Tasks at once (default 1). */
  maxCapacity?: number;
  /** Where task output is kept (`{dataDir}/units/{id}`). */
  dataDir: string;
  /** PEM of a CA to trust for wss:// (and the agent's https:// calls to the server). */
  ca?: string;
  /**
   * Proxies of the agent's connection and calls to the server, and of its HTTP tasks
   * (core/proxies.ts); default: proxiesFromEnv(process.env).
   */
  proxies?: Proxies;
  /**
   * Executors (default: SHELL and HTTP_*, plus DOCKER and KUBERNETES when `methods`
   * names them, set up from `containers`).
   */
  executors?: Executor[];
  /** colony.yaml's `docker:` and `kubernetes:` settings, for DOCKER and KUBERNETES tasks. */
  containers?: { docker?: DockerConfig; kubernetes?: KubernetesConfig };
  /** TLS of HTTP tasks (the `http:` config of `--config`, config.ts readHttpTls). */
  httpTls?: HttpTls;
  shell?: string;
  killGraceMs?: number;
  reconnectMinMs?: number;
  /** The longest wait between reconnect attempts (default RECONNECT_MAX_MS). */
  reconnectMaxMs?: number;
  /** Bytes per output frame (default 64 KiB). */
  chunkBytes?: number;
  /** How long a held task the server did not ask back is kept (default 60 s). */
  orphanMs?: number;
  log?: (message: string) => void;
}

interface AgentTask {
  id: string;
  request: TaskRequest;
  outPath: string;
  executor: Executor;
  finished: boolean;
  /** The final reply, once the task ended. */
  reply?: TaskResponse;
  /** Output bytes the server has (as far as we know). */
  sent: number;
  /** The output stream now feeding the server, if any. */
  pumping?: { socket: WebSocket; stop(): void };
  orphanTimer?: NodeJS.Timeout;
  /** Aborted by a cancel: stops its artifact downloads, or its start if not yet begun. */
  readonly stop: AbortController;
}

/** Pauses output while this many bytes wait in the socket's buffer. */
const MAX_BUFFERED = 4 * 1024 * 1024;

export class AntAgent {
  readonly antId: string;
  readonly session = randomUUID();
  readonly #o: AntAgentOptions;
  readonly #url: string;
  readonly #registry = new ExecutorRegistry();
  readonly #methods: Method[];
  readonly #tasks = new Map<string, AgentTask>();
  readonly #log: (message: string) => void;
  #socket: WebSocket | undefined;
  #registered = false;
  #closed = false;
  /** The server refused the first connection (401/403): the start failed; no reconnect. */
  #refused = false;
  #attempts = 0;
  #retry: NodeJS.Timeout | undefined;
  readonly #ready = Promise.withResolvers<void>();
  readonly #proxies: Proxies;
  /** undici's dispatcher for the agent's own https:// calls to the server (artifacts). */
  #serverCalls: Dispatcher | undefined;

  constructor(options: AntAgentOptions) {
    this.#o = options;
    this.#url = antsEndpoint(options.server);
    this.#proxies = options.proxies ?? proxiesFromEnv();
    this.antId = options.antId ?? `${hostname()}-${process.pid}`;
    this.#log = options.log ?? (() => undefined);
    const executors = options.executors ?? [
      createShellExecutor({
        ...(options.shell ? { shell: options.shell } : {}),
        ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
      }),
      createHttpExecutor({
        proxies: this.#proxies,
        ...(options.httpTls ? { tls: options.httpTls } : {}),
      }),
      ...this.#containerExecutors(options),
    ];
    for (const e of executors) this.#registry.register(e);
    const available = this.#registry.methods();
    const wanted = options.methods ?? available;
    const missing = wanted.filter((m) => !available.includes(m));
    if (missing.length > 0) {
      throw new TypeError(
        `this agent cannot run ${missing.join(", ")}; it runs ${available.join(", ")}` +
          (available.includes("DOCKER") ? "" : ", and DOCKER and KUBERNETES when asked for"),
      );
    }
    this.#methods = wanted;
    this.#ready.promise.catch(() => undefined);
  }

  /**
   * DOCKER and KUBERNETES executors for the methods asked for, as the server makes them:
   * their containers (pods) carry this agent's owner label, and the reaper stops those
   * of tasks this agent no longer holds (an agent that restarted lost its tasks: the
   * server retried them elsewhere).
   */
  #containerExecutors(options: AntAgentOptions): Executor[] {
    const wanted = (["DOCKER", "KUBERNETES"] as const).filter((m) => options.methods?.includes(m));
    const setup = {
      dataDir: options.dataDir,
      nodeId: this.antId,
      ...options.containers,
      ...(options.killGraceMs === undefined ? {} : { killGraceMs: options.killGraceMs }),
      log: this.#log,
      isExecutionLive: (id: string) => {
        const t = this.#tasks.get(id);
        return Promise.resolve(t !== undefined && !t.finished);
      },
    };
    return wanted.map((method) => createContainerExecutor(method, setup));
  }

  /** Whether each offered method can run here (a Docker engine for DOCKER...): the ones that cannot. */
  async unavailable(): Promise<Method[]> {
    const out: Method[] = [];
    for (const method of this.#methods) {
      const executor = this.#registry.get(method);
      if (!executor || !(await executor.isInstalled(AbortSignal.timeout(5000)).catch(() => false)))
        out.push(method);
    }
    return out;
  }

  get methods(): readonly Method[] {
    return this.#methods;
  }

  get connected(): boolean {
    return this.#registered && this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Task ids it holds (running, or finished and not acknowledged). */
  held(): string[] {
    return [...this.#tasks.keys()];
  }

  /** Connects; resolves once registered the first time. */
  start(): Promise<void> {
    this.#connect();
    return this.#ready.promise;
  }

  /** Stops: running tasks are cancelled (and reported) unless `leaveRunning`. */
  async close(options: { leaveRunning?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    if (!options.leaveRunning) {
      const running = [...this.#tasks.values()].filter((t) => !t.finished);
      await Promise.all(running.map((t) => t.executor.cancel(t.id).catch(() => undefined)));
      // Give the results a moment to reach the server.
      const until = Date.now() + 3000;
      while (Date.now() < until && [...this.#tasks.values()].some((t) => !t.reply || t.pumping)) {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    this.#closed = true;
    clearTimeout(this.#retry);
    for (const t of this.#tasks.values()) {
      t.pumping?.stop();
      clearTimeout(t.orphanTimer);
    }
    const ws = this.#socket;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000, "ant stopping");
      });
    }
    await this.#registry.close({ killRunning: !options.leaveRunning });
    await this.#serverCalls?.close().catch(() => undefined);
  }

  /**
   * The dispatcher of the agent's calls to the server besides its WebSocket (artifact
   * transfers, which go to URLs the server signed): they trust what the WebSocket
   * trusts (`ca`) and take the same proxy.
   */
  async #dispatcher(): Promise<Dispatcher> {
    const http = await undici();
    this.#serverCalls ??= proxiedDispatcher(
      http,
      this.#proxies,
      this.#o.ca ? { ca: this.#o.ca } : undefined,
    );
    return this.#serverCalls;
  }

  #connect(): void {
    if (this.#closed) return;
    this.#registered = false;
    const ws = new WebSocket(
      this.#url,
      antSocketOptions(this.#url, this.#o.token, this.#o.ca, this.#proxies),
    );
    this.#socket = ws;
    ws.on("open", () => {
      ws.send(
        JSON.stringify({
          ant_id: this.antId,
          tags: this.#o.tags ?? [],
          methods: this.#methods,
          max_capacity: this.#o.maxCapacity ?? 1,
          protocol: AGENT_PROTOCOL,
          session: this.session,
          running: this.held(),
        }),
      );
    });
    ws.on("message", (data) => this.#onFrame(ws, data.toString()));
    ws.on("unexpected-response", (_req, res) => {
      const why = `${this.#url} answered HTTP ${res.statusCode}${res.statusCode === 401 || res.statusCode === 403 ? " (check the token: it needs role ant)" : ""}`;
      // Refused at the first try: a wrong token, not a server restarting. The start
      // fails with this reason alone (no "closed before established", no reconnect).
      if (this.#attempts === 0 && (res.statusCode === 401 || res.statusCode === 403)) {
        this.#refused = true;
        this.#ready.reject(new Error(why));
      } else {
        this.#log(`colony ant: ${why}`);
      }
      ws.terminate();
    });
    ws.on("error", (error) => {
      if (!this.#refused) this.#log(`colony ant: ${error.message}`);
    });
    ws.on("close", (code, reason) => {
      for (const t of this.#tasks.values()) if (t.pumping?.socket === ws) t.pumping.stop();
      if (this.#closed || this.#refused || this.#socket !== ws) return;
      this.#attempts++;
      const wait = backoff(
        this.#attempts,
        this.#o.reconnectMinMs ?? 500,
        this.#o.reconnectMaxMs ?? RECONNECT_MAX_MS,
      );
      this.#log(
        `colony ant: disconnected (${code}${reason.length ? ` ${reason.toString()}` : ""}); reconnecting in ${wait} ms`,
      );
      this.#retry = setTimeout(() => this.#connect(), wait);
    });
  }

  #onFrame(ws: WebSocket, text: string): void {
    const json = parseJsonFrame(text);
    if (!json.ok) return this.#log(`colony ant: ignored a frame: ${json.error}`);
    const value = json.value as { type?: unknown };
    if (typeof value === "object" && value !== null && typeof value.type === "string") {
      const frame = parseServerFrame(value);
      if (!frame.ok) return this.#log(`colony ant: ignored a frame: ${frame.error}`);
      const f = frame.value;
      if (f.type === "registered") return this.#onRegistered(ws, f.resume);
      if (f.type === "cancel") {
        const t = this.#tasks.get(f.task_execution_id);
        if (t && !t.finished) {
          t.stop.abort();
          void t.executor.cancel(t.id).catch(() => undefined);
        }
        return;
      }
      if (f.type === "log") {
        // Hook logs join the output here; the pump streams them with the rest.
        const t = this.#tasks.get(f.task_execution_id);
        if (t && !t.finished) {
          mkdirSync(dirname(t.outPath), { recursive: true, mode: 0o700 });
          appendFileSync(t.outPath, Buffer.from(f.data, "base64"), { mode: 0o600 });
        }
        return;
      }
      // ack: the server recorded the result, or no longer wants the task: forget it.
      const t = this.#tasks.get(f.task_execution_id);
      if (t) {
        t.pumping?.stop();
        clearTimeout(t.orphanTimer);
        if (!t.finished) void t.executor.cancel(t.id).catch(() => undefined);
        this.#tasks.delete(t.id);
      }
      return;
    }
    const request = parseTaskRequest(value);
    if (!request.ok) return this.#log(`colony ant: ignored a frame: ${request.error}`);
    void this.#run(ws, request.value);
  }

  #onRegistered(ws: WebSocket, resume: Record<string, number>): void {
    // The first connection is announced by whoever awaited start() (`colony ant` prints it).
    this.#registered = true;
    this.#attempts = 0;
    this.#ready.resolve();
    for (const [id, offset] of Object.entries(resume)) {
      const t = this.#tasks.get(id);
      if (!t) continue;
      clearTimeout(t.orphanTimer);
      t.orphanTimer = undefined;
      t.sent = offset;
      this.#pump(ws, t);
    }
    // Held tasks the server did not ask back: it may after a restart; else drop them.
    for (const t of this.#tasks.values()) {
      if (t.id in resume || t.orphanTimer) continue;
      if (t.pumping?.socket === ws) continue;
      t.orphanTimer = setTimeout(() => {
        this.#log(`colony ant: the server no longer wants task ${t.id}; stopping it`);
        if (!t.finished) void t.executor.cancel(t.id).catch(() => undefined);
        this.#tasks.delete(t.id);
      }, this.#o.orphanMs ?? 60_000);
      t.orphanTimer.unref();
    }
  }

  async #run(ws: WebSocket, request: TaskRequest): Promise<void> {
    const id = request.task_execution_id;
    if (this.#tasks.has(id)) return; // sent twice (a reconnect race): it runs already
    const unitDir = join(this.#o.dataDir, "units", id);
    const exec = executionRequestOf(request, unitDir);
    const executor = this.#methods.includes(exec.method)
      ? this.#registry.get(exec.method)
      : undefined;
    const t: AgentTask = {
      id,
      request,
      outPath: join(unitDir, "stdout"),
      executor: executor ?? this.#registry.all()[0]!,
      finished: false,
      sent: 0,
      stop: new AbortController(),
    };
    this.#tasks.set(id, t);
    if (!executor) {
      return this.#finish(t, {
        exitCode: null,
        killed: false,
        errorCode: "COLONY_NO_EXECUTOR",
        error: `ant ${this.antId} does not run ${exec.method} tasks (it runs ${this.#methods.join(", ")})`,
      });
    }
    const paths = exec.task.artifacts?.paths ?? [];
    const downloads = exec.artifactDownloads ?? [];
    if (paths.length > 0 || downloads.length > 0) {
      // The task's own work dir here, as the server gives its built-in ant's tasks.
      const workDir = join(unitDir, "work");
      exec.workDir = workDir;
      exec.env.COLONY_WORK_DIR = workDir;
      try {
        await fetchArtifacts(workDir, downloads, t.stop.signal, await this.#dispatcher(), (line) =>
          noteInOutput(t.outPath, line),
        );
      } catch (error) {
        if (t.stop.signal.aborted) return this.#finish(t, CANCELLED_BEFORE_START);
        return this.#finish(t, {
          exitCode: null,
          killed: false,
          errorCode: ARTIFACTS_FAILED,
          error: `fetching the artifacts of its dependencies failed: ${(error as Error).message}`,
        });
      }
    }
    if (t.stop.signal.aborted) return this.#finish(t, CANCELLED_BEFORE_START);
    let result: ExecutionResult;
    try {
      await executor.start(exec);
      this.#pump(ws, t);
      result = await executor.wait(id);
    } catch (error) {
      result = {
        exitCode: null,
        killed: false,
        errorCode: (error as { code?: string }).code ?? "COLONY_EXECUTOR_FAILURE",
        error: (error as Error).message,
      };
    }
    if (paths.length > 0 && exec.workDir && !result.killed) {
      const dispatcher = await this.#dispatcher();
      result = await uploadArtifacts(exec, exec.workDir, paths, result, dispatcher, (line) =>
        noteInOutput(t.outPath, line),
      );
    }
    this.#finish(t, result);
  }

  #finish(t: AgentTask, result: ExecutionResult): void {
    const status: ResponseStatus = result.killed
      ? "CANCELLED"
      : completedResult(result)
        ? "COMPLETED"
        : "FAILED";
    t.finished = true;
    t.reply = responseFor(t.request, {
      status,
      ant_id: this.antId,
      host: hostname(),
      ...(result.exitCode === null ? {} : { exit_code: result.exitCode }),
      ...(result.errorCode ? { error_code: result.errorCode } : {}),
      ...(result.error ? { error_message: result.error } : {}),
      ...(result.context ? { task_context: result.context } : {}),
    });
    // The pump sends the reply after the last output byte; start one if none runs.
    notifyDone(t.outPath);
    const ws = this.#socket;
    if (!t.pumping && ws && this.#registered) this.#pump(ws, t);
  }

  /** Streams the output from `t.sent` to the server, then the reply once the task ended. */
  #pump(ws: WebSocket, t: AgentTask): void {
    t.pumping?.stop();
    const chunkBytes = this.#o.chunkBytes ?? 64 * 1024;
    const abort = new AbortController();
    const pumping = { socket: ws, stop: () => abort.abort() };
    t.pumping = pumping;
    const send = async () => {
      const stream = followFile(t.outPath, {
        offset: t.sent,
        follow: true,
        done: () => t.finished,
        signal: abort.signal,
      });
      for await (const chunk of stream) {
        const bytes = chunk as Buffer;
        for (let i = 0; i < bytes.length; i += chunkBytes) {
          const part = bytes.subarray(i, i + chunkBytes);
          while (ws.bufferedAmount > MAX_BUFFERED && !abort.signal.aborted) {
            await new Promise((r) => setTimeout(r, 20));
          }
          if (abort.signal.aborted || ws.readyState !== WebSocket.OPEN) return;
          ws.send(
            JSON.stringify({
              type: "output",
              task_execution_id: t.id,
              offset: t.sent,
              data: part.toString("base64"),
            }),
          );
          t.sent += part.length;
        }
      }
      if (!abort.signal.aborted && t.reply && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify(t.reply));
      }
    };
    send()
      .catch((error: unknown) => {
        if (!abort.signal.aborted) {
          this.#log(`colony ant: streaming the output of ${t.id} failed: ${String(error)}`);
        }
      })
      .finally(() => {
        if (t.pumping === pumping) t.pumping = undefined;
      });
  }
}

const ARTIFACTS_FAILED = "COLONY_ARTIFACTS_FAILED";
/** A task cancelled while its dependencies' files were still coming: it never ran. */
const CANCELLED_BEFORE_START: ExecutionResult = {
  exitCode: null,
  killed: true,
  error: "cancelled before it started",
};

/** Puts the dependencies' files (signed URLs from the server) into the work dir. */
async function fetchArtifacts(
  workDir: string,
  downloads: ArtifactDownload[],
  signal: AbortSignal,
  dispatcher: Dispatcher,
  say: (line: string) => void,
): Promise<void> {
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  for (const d of downloads) {
    const target = inside(workDir, d.name);
    if (!target) throw new Error(`'${d.name}' would leave the task's work dir`);
    const response = await (await undici()).request(d.url, { signal, dispatcher });
    if (!succeeded(response)) {
      await response.body.dump();
      throw new Error(`${d.name}: HTTP ${response.statusCode} from the server`);
    }
    await placeArtifact(target, response.body, d.executable, signal);
  }
  if (downloads.length > 0)
    say(`fetched ${count(downloads.length, "artifact file")} into ${workDir}`);
}

/**
 * After the task: uploads every file its `artifacts.paths` match through the job hook,
 * as the server stores its built-in ant's (named by their path in the work dir). A
 * failure fails a task that had completed, as on the server.
 */
async function uploadArtifacts(
  exec: ExecutionRequest,
  workDir: string,
  paths: string[],
  result: ExecutionResult,
  dispatcher: Dispatcher,
  say: (line: string) => void,
): Promise<ExecutionResult> {
  try {
    const credentials = hookCredentials(exec.env);
    if (!credentials) {
      throw new Error("the server gave this task no job hook (JOB_HOOK, JOB_ID, JOB_SECRET_KEY)");
    }
    const { files, unmatched } = await matchArtifactFiles(workDir, paths);
    const names: string[] = [];
    for (const file of files) {
      const name = artifactName(workDir, file);
      const executable = ((await stat(file)).mode & 0o111) !== 0;
      await uploadFile(
        credentials,
        file,
        {
          store: ARTIFACT_STORE,
          property: TASK_ARTIFACTS_PROPERTY,
          metadata: { name, path: name, ...(executable ? { executable: true } : {}) },
        },
        undefined,
        dispatcher,
      );
      names.push(name);
    }
    if (names.length > 0) say(`stored ${count(names.length, "artifact")}: ${names.join(", ")}`);
    for (const p of unmatched) say(`artifacts path '${p}' matched no file`);
    return result;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    say(`storing artifacts failed: ${message}`);
    if (!completedResult(result)) return result;
    return {
      ...result,
      status: "FAILED",
      errorCode: ARTIFACTS_FAILED,
      error: `storing its artifacts failed: ${message}`,
    };
  }
}
