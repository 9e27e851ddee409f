/**
 * A small typed client for colony's REST API (the CLI's client commands use it; so can
 * any Node program). Responses are the wire views of src/server/schemas.ts; a refusal
 * throws ColonyClientError with the server's `{error: {code, message}}` and status, and
 * a server that cannot be reached says which address was tried and where it came from.
 *
 * Transport: node:http / node:https with one keep-alive agent per client. One code path
 * serves plain http, https with the system CAs and https with a private CA (which
 * global fetch cannot take without the undici package), and output streams arrive as
 * Node Readables that are also async iterables.
 */
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { ColonyError } from "../core/errors.ts";
import { bypassList, proxiesFromEnv, proxyFor, type Proxies } from "../core/proxies.ts";
import { redactUrl } from "../core/urls.ts";
import type { State } from "../core/states.ts";
import type {
  DefinitionListView,
  JobRequestPageView,
  JobRequestView,
  StoredDefinitionView,
  UnitPageView,
  UnitView,
} from "../server/schemas.ts";
import type { CreatedTokenView, TokenListView, TokenView } from "../server/api/tokens.ts";
import type { AntListView } from "../ants/ws-endpoint.ts";

export type {
  JobDefinitionView,
  JobRequestPageView,
  JobRequestView,
  StoredDefinitionView,
  TaskExecutionView,
  UnitPageView,
  UnitView,
} from "../server/schemas.ts";
export type { CreatedTokenView, TokenView } from "../server/api/tokens.ts";
import type { ArtifactPageView, ArtifactView } from "../server/api/artifacts.ts";
import type { ScheduleListView, ScheduleView } from "../server/api/schedules.ts";
export type { ArtifactPageView, ArtifactView } from "../server/api/artifacts.ts";
export type { ScheduleView } from "../server/api/schedules.ts";

export interface ArtifactQuery {
  jobRequestId?: number;
  taskType?: string;
  executionId?: string;
  uuid?: string;
  property?: string;
  limit?: number;
  cursor?: string;
}

export interface ClientConfig {
  /** Base URL of the server, e.g. http://127.0.0.1:7777. */
  server: string;
  /** A colony token (sent as `Authorization: Bearer <token>`). */
  token?: string;
  /** PEM text of a CA to trust for https (a self-signed server certificate). */
  ca?: string;
  /** Where server and token came from ("--server", "$COLONY_SERVER"...), for messages. */
  sources?: { server?: string; token?: string };
  /** Milliseconds to wait for an answer to a non-streaming call (default 60 000). */
  timeoutMs?: number;
  /**
   * The proxy to reach the server through (core/proxies.ts); default: HTTPS_PROXY,
   * HTTP_PROXY and NO_PROXY of the environment. `{}`: none.
   */
  proxies?: Proxies;
}

/** The server refused (status >= 400), or could not be reached (code COLONY_UNREACHABLE, status 0). */
export class ColonyClientError extends ColonyError {
  readonly server: string;

  constructor(
    code: string,
    message: string,
    options: { status: number; server: string; details?: Record<string, unknown>; cause?: unknown },
  ) {
    super(code, message, {
      status: options.status,
      details: options.details,
      cause: options.cause,
      retryable: options.status === 0 || options.status === 503,
    });
    this.server = options.server;
  }
}

export interface SubmitOptions {
  params?: Record<string, unknown>;
  /** When to run (default now). */
  scheduledAt?: Date | string;
}

export interface JobRequestQuery {
  state?: State | State[] | string;
  jobType?: string;
  /** 1..500 (default 50). */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

export interface OutputOptions {
  /** Start at this byte. */
  offset?: number;
  /** Only output written from now on. */
  tail?: boolean;
  /** Stay open until the task ends. */
  follow?: boolean;
  /** A specific execution (unit id) of the task; default its latest. */
  execution?: string;
  signal?: AbortSignal;
}

export type NewRole = "reader" | "writer" | "admin" | "ant";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "ECONNRESET",
  "EPIPE",
]);

export class ColonyClient {
  readonly server: string;
  readonly #config: ClientConfig;
  readonly #agent: http.Agent;
  readonly #url: URL;
  /** The proxy calls go through, if any. */
  readonly #proxy: string | undefined;

  constructor(config: ClientConfig) {
    this.server = config.server.replace(/\/+$/, "");
    this.#config = config;
    try {
      this.#url = new URL(this.server);
    } catch {
      throw new ColonyClientError(
        "COLONY_BAD_SERVER_URL",
        `'${config.server}'${from(config)} is not a URL; write e.g. http://127.0.0.1:7777`,
        { status: 0, server: config.server },
      );
    }
    if (this.#url.protocol !== "http:" && this.#url.protocol !== "https:") {
      throw new ColonyClientError(
        "COLONY_BAD_SERVER_URL",
        `'${config.server}'${from(config)} is not an http or https URL`,
        { status: 0, server: config.server },
      );
    }
    // Through a proxy: Node's agents forward http:// calls and tunnel https:// ones.
    const proxies = config.proxies ?? proxiesFromEnv();
    this.#proxy = proxyFor(proxies, this.#url);
    const proxyEnv = this.#proxy && {
      ...(proxies.http ? { HTTP_PROXY: proxies.http } : {}),
      HTTPS_PROXY: proxies.https ?? this.#proxy,
      NO_PROXY: bypassList(proxies),
    };
    const options = { keepAlive: true, ...(proxyEnv ? { proxyEnv } : {}) };
    this.#agent =
      this.#url.protocol === "https:"
        ? new https.Agent({ ...options, ...(config.ca ? { ca: config.ca } : {}) })
        : new http.Agent(options);
  }

  /** Frees the keep-alive connections (the process can then exit without waiting for them). */
  close(): void {
    this.#agent.destroy();
  }

  // -- health -----------------------------------------------------------------------------

  health(): Promise<{
    status: "ok";
    node_id: string;
    store: string;
    version: string;
    uptime_seconds: number;
  }> {
    return this.#json("GET", "/api/health");
  }

  // -- job definitions --------------------------------------------------------------------

  /** Saves a definition: YAML (or JSON) text, or the definition object. */
  saveDefinition(definition: string | Record<string, unknown>): Promise<StoredDefinitionView> {
    return typeof definition === "string"
      ? this.#json("POST", "/api/job-definitions", definition, "application/yaml")
      : this.#json("POST", "/api/job-definitions", definition);
  }

  async listDefinitions(): Promise<StoredDefinitionView[]> {
    return (await this.#json<DefinitionListView>("GET", "/api/job-definitions")).items;
  }

  getDefinition(jobType: string): Promise<StoredDefinitionView> {
    return this.#json("GET", `/api/job-definitions/${enc(jobType)}`);
  }

  /** The definition's source text as saved (secret values masked). */
  async getDefinitionSource(jobType: string): Promise<string> {
    const answer = await this.#send("GET", `/api/job-definitions/${enc(jobType)}?format=yaml`);
    return (await readAll(answer.body)).toString("utf8");
  }

  async deleteDefinition(jobType: string): Promise<void> {
    const answer = await this.#send("DELETE", `/api/job-definitions/${enc(jobType)}`);
    answer.body.resume();
  }

  pauseDefinition(jobType: string): Promise<StoredDefinitionView> {
    return this.#json("POST", `/api/job-definitions/${enc(jobType)}/pause`, {});
  }

  resumeDefinition(jobType: string): Promise<StoredDefinitionView> {
    return this.#json("POST", `/api/job-definitions/${enc(jobType)}/resume`, {});
  }

  // -- job requests -----------------------------------------------------------------------

  /** Submits the saved definition of `jobType`. */
  submit(jobType: string, options: SubmitOptions = {}): Promise<JobRequestView> {
    return this.#json("POST", "/api/job-requests", { job_type: jobType, ...submitFields(options) });
  }

  /** Submits an inline definition (YAML text or the object) without saving it. */
  submitDefinition(
    definition: string | Record<string, unknown>,
    options: SubmitOptions = {},
  ): Promise<JobRequestView> {
    return this.#json("POST", "/api/job-requests", { definition, ...submitFields(options) });
  }

  listJobRequests(query: JobRequestQuery = {}): Promise<JobRequestPageView> {
    const q = new URLSearchParams();
    if (query.state !== undefined)
      q.set("state", Array.isArray(query.state) ? query.state.join(",") : query.state);
    if (query.jobType !== undefined) q.set("job_type", query.jobType);
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    if (query.cursor !== undefined) q.set("cursor", query.cursor);
    const qs = q.toString();
    return this.#json("GET", `/api/job-requests${qs ? `?${qs}` : ""}`);
  }

  /** Every matching request, newest first, fetching page after page as it is iterated. */
  async *jobRequests(query: Omit<JobRequestQuery, "cursor"> = {}): AsyncGenerator<JobRequestView> {
    let cursor: string | undefined;
    do {
      const page = await this.listJobRequests({ ...query, cursor });
      yield* page.items;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /** A request with every task execution (`tasks`). */
  getJobRequest(id: number): Promise<JobRequestView> {
    return this.#json("GET", `/api/job-requests/${id}`);
  }

  cancelJobRequest(id: number): Promise<JobRequestView> {
    return this.#json("POST", `/api/job-requests/${id}/cancel`, {});
  }

  restartJobRequest(id: number): Promise<JobRequestView> {
    return this.#json("POST", `/api/job-requests/${id}/restart`, {});
  }

  // -- output -----------------------------------------------------------------------------

  /** A task's output bytes (latest execution in the latest attempt unless `execution`). */
  async taskOutput(id: number, taskType: string, options: OutputOptions = {}): Promise<Readable> {
    const q = outputQuery(options);
    if (options.execution !== undefined) q.set("execution", options.execution);
    const qs = q.toString();
    const answer = await this.#send(
      "GET",
      `/api/job-requests/${id}/tasks/${enc(taskType)}/output${qs ? `?${qs}` : ""}`,
      { signal: options.signal, stream: true },
    );
    return answer.body;
  }

  /** An execution's output bytes, by its unit id. */
  async executionOutput(executionId: string, options: OutputOptions = {}): Promise<Readable> {
    const qs = outputQuery(options).toString();
    const answer = await this.#send(
      "GET",
      `/api/task-executions/${enc(executionId)}/output${qs ? `?${qs}` : ""}`,
      { signal: options.signal, stream: true },
    );
    return answer.body;
  }

  // -- units ------------------------------------------------------------------------------

  listUnits(query: { limit?: number; cursor?: string } = {}): Promise<UnitPageView> {
    const q = new URLSearchParams();
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    if (query.cursor !== undefined) q.set("cursor", query.cursor);
    const qs = q.toString();
    return this.#json("GET", `/api/units${qs ? `?${qs}` : ""}`);
  }

  getUnit(id: string): Promise<UnitView> {
    return this.#json("GET", `/api/units/${enc(id)}`);
  }

  // -- schedules and artifacts (docs/schedules.md, docs/artifacts.md) ---------------------

  async listSchedules(): Promise<ScheduleView[]> {
    return (await this.#json<ScheduleListView>("GET", "/api/schedules")).items;
  }

  getSchedule(jobType: string): Promise<ScheduleView> {
    return this.#json("GET", `/api/schedules/${enc(jobType)}`);
  }

  pauseSchedule(jobType: string): Promise<ScheduleView> {
    return this.#json("POST", `/api/schedules/${enc(jobType)}/pause`, {});
  }

  resumeSchedule(jobType: string): Promise<ScheduleView> {
    return this.#json("POST", `/api/schedules/${enc(jobType)}/resume`, {});
  }

  listArtifacts(query: ArtifactQuery = {}): Promise<ArtifactPageView> {
    const q = new URLSearchParams();
    if (query.jobRequestId !== undefined) q.set("job_request_id", String(query.jobRequestId));
    if (query.taskType !== undefined) q.set("task_type", query.taskType);
    if (query.executionId !== undefined) q.set("execution_id", query.executionId);
    if (query.uuid !== undefined) q.set("uuid", query.uuid);
    if (query.property !== undefined) q.set("property", query.property);
    if (query.limit !== undefined) q.set("limit", String(query.limit));
    if (query.cursor !== undefined) q.set("cursor", query.cursor);
    const qs = q.toString();
    return this.#json("GET", `/api/artifacts${qs ? `?${qs}` : ""}`);
  }

  getArtifact(id: string): Promise<ArtifactView> {
    return this.#json("GET", `/api/artifacts/${enc(id)}`);
  }

  /** An artifact's bytes, as a stream. */
  async downloadArtifact(id: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const answer = await this.#send("GET", `/api/artifacts/${enc(id)}/download`, {
      signal: options.signal,
      stream: true,
    });
    return answer.body;
  }

  // -- tokens (admin) ---------------------------------------------------------------------

  /** Creates a token; the answer's `token` is the only time it is shown. */
  createToken(input: { role: NewRole; name: string }): Promise<CreatedTokenView> {
    return this.#json("POST", "/api/tokens", input);
  }

  async listTokens(): Promise<TokenView[]> {
    return (await this.#json<TokenListView>("GET", "/api/tokens")).items;
  }

  revokeToken(id: string): Promise<TokenView> {
    return this.#json("DELETE", `/api/tokens/${enc(id)}`);
  }

  /** The ants: the built-in one and every remote one, and tasks waiting for one. */
  listAnts(): Promise<AntListView> {
    return this.#json("GET", "/api/ants");
  }

  // -- plumbing ---------------------------------------------------------------------------

  async #json<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const answer = await this.#send(method, path, { body, contentType });
    const text = (await readAll(answer.body)).toString("utf8");
    try {
      return JSON.parse(text) as T;
    } catch (cause) {
      throw new ColonyClientError(
        "COLONY_BAD_ANSWER",
        `${method} ${this.server}${path} answered ${answer.status} with something that is not JSON; is ${this.server} a colony server?`,
        { status: answer.status, server: this.server, cause },
      );
    }
  }

  #send(
    method: string,
    path: string,
    options: { body?: unknown; contentType?: string; signal?: AbortSignal; stream?: boolean } = {},
  ): Promise<Answer> {
    const url = new URL(path, this.#url);
    const headers: Record<string, string> = { accept: "application/json, text/plain;q=0.9" };
    if (this.#config.token) headers.authorization = `Bearer ${this.#config.token}`;
    let payload: Buffer | undefined;
    if (options.body !== undefined) {
      const text =
        typeof options.body === "string" && options.contentType
          ? options.body
          : JSON.stringify(options.body);
      payload = Buffer.from(text, "utf8");
      headers["content-type"] = options.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    const transport = url.protocol === "https:" ? https : http;
    return new Promise<Answer>((resolve, reject) => {
      const req = transport.request(
        url,
        { method, headers, agent: this.#agent, signal: options.signal },
        (res) => {
          const status = res.statusCode ?? 0;
          if (!options.stream) req.setTimeout(0);
          if (status < 400) {
            resolve({ status, headers: res.headers, body: res });
            return;
          }
          readAll(res).then(
            (buf) => reject(this.#refusal(method, url, status, buf.toString("utf8"))),
            (error: unknown) => reject(this.#unreachable(error)),
          );
        },
      );
      if (!options.stream) {
        req.setTimeout(this.#config.timeoutMs ?? 60_000, () =>
          req.destroy(Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" })),
        );
      }
      req.on("error", (error) => reject(this.#unreachable(error)));
      req.end(payload);
    });
  }

  #refusal(method: string, url: URL, status: number, text: string): ColonyClientError {
    let error: { code?: unknown; message?: unknown; details?: unknown } | undefined;
    try {
      error = (JSON.parse(text) as { error?: typeof error }).error;
    } catch {
      error = undefined;
    }
    if (error && typeof error.code === "string" && typeof error.message === "string") {
      return new ColonyClientError(error.code, error.message, {
        status,
        server: this.server,
        details:
          typeof error.details === "object" && error.details !== null
            ? (error.details as Record<string, unknown>)
            : undefined,
      });
    }
    return new ColonyClientError(
      `COLONY_HTTP_${status}`,
      `${method} ${url.pathname} answered ${status}${text ? `: ${text.slice(0, 200)}` : ""}`,
      { status, server: this.server },
    );
  }

  #unreachable(error: unknown): Error {
    const e = error as NodeJS.ErrnoException;
    if (e?.name === "AbortError") return e;
    const code = typeof e?.code === "string" ? e.code : "";
    if (this.#proxy && (code === "ERR_PROXY_TUNNEL" || UNREACHABLE.has(code))) {
      const wants = /\b407\b/.test(e.message)
        ? "; it wants credentials: put them in the proxy's URL (http://user:password@proxy:3128)"
        : "; check the proxy, or list the server's host in NO_PROXY";
      return new ColonyClientError(
        "COLONY_UNREACHABLE",
        `cannot reach ${this.server}${from(this.#config)} through the proxy ${redactUrl(this.#proxy)}: ${redactUrl(e.message)}${wants}`,
        { status: 0, server: this.server, cause: error },
      );
    }
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
      return new ColonyClientError(
        "COLONY_TLS",
        `cannot reach ${this.server}${from(this.#config)}: its certificate is not trusted (${code}); pass --ca FILE or set COLONY_CA to the CA that signed it`,
        { status: 0, server: this.server, cause: error },
      );
    }
    if (UNREACHABLE.has(code) || code === "") {
      return new ColonyClientError(
        "COLONY_UNREACHABLE",
        `cannot reach ${this.server}${from(this.#config)}; is 'colony server' running? Set --server or COLONY_SERVER`,
        { status: 0, server: this.server, cause: error },
      );
    }
    return new ColonyClientError(
      "COLONY_UNREACHABLE",
      `cannot reach ${this.server}${from(this.#config)}: ${e?.message ?? String(error)}`,
      { status: 0, server: this.server, cause: error },
    );
  }
}

export function createClient(config: ClientConfig): ColonyClient {
  return new ColonyClient(config);
}

function from(config: ClientConfig): string {
  return config.sources?.server ? ` (from ${config.sources.server})` : "";
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}

function submitFields(options: SubmitOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (options.params !== undefined) out.params = options.params;
  if (options.scheduledAt !== undefined)
    out.scheduled_at =
      options.scheduledAt instanceof Date ? options.scheduledAt.toISOString() : options.scheduledAt;
  return out;
}

function outputQuery(options: OutputOptions): URLSearchParams {
  const q = new URLSearchParams();
  if (options.offset !== undefined) q.set("offset", String(options.offset));
  if (options.tail) q.set("tail", "1");
  if (options.follow) q.set("follow", "1");
  return q;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
