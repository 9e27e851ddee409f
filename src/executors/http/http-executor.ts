/**
 * The HTTP executor (seed 000 "REST"): HTTP_GET, HTTP_POST_FORM, HTTP_POST_JSON,
 * HTTP_PUT_FORM, HTTP_PUT_JSON and HTTP_DELETE call the task's `url` with its `headers`
 * and `query`; the POST/PUT/DELETE body is made of the task's `variables` (a form, or a
 * JSON object; DELETE sends JSON only when the task has variables).
 *
 * The response body is streamed into the task's output file as it arrives (so it
 * follows live like a process's output), and the status and body go into the task's
 * context for later tasks: `{{.http_status}}`, `{{.http_body}}` (parsed when the answer
 * is JSON, so `{{.http_body.id}}` works) and `{{.http_headers}}`.
 *
 * A 2xx answer is exit code 0. Any other status fails the task with that status as its
 * exit code, so `on_exit_code: {"404": create-it}` routes on it. An unreachable server,
 * a reset connection or a bad URL fail it with no exit code (retried per the task's
 * `retry`); cancel and the task's timeout abort the request.
 *
 * Requests go through core/http-request.ts (undici, not fetch): the task's headers go
 * out as written, any port is callable, and redirects are followed (up to 20, as fetch
 * does: 303 and a POST's 301/302 become a GET; credentials are not sent to another
 * origin).
 *
 * Proxies: the usual HTTP_PROXY, HTTPS_PROXY and NO_PROXY variables of the process that
 * runs the task (core/proxies.ts), through undici's EnvHttpProxyAgent: http:// calls are
 * forwarded, https:// ones tunnelled with CONNECT (the task's TLS, CA and client
 * certificate still end at the server); loopback is always called directly.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { Dispatcher } from "undici";
import { ExecutorError } from "../../core/errors.ts";
import { proxiedDispatcher, undici } from "../../core/http-request.ts";
import type {
  ExecutionRequest,
  ExecutionResult,
  Executor,
  LogStreamRequest,
} from "../../core/executor.ts";
import type { Method, Variable } from "../../core/job-definition.ts";
import { renderTemplate } from "../../core/template.ts";
import { redactUrl } from "../../core/urls.ts";
import { proxiesFromEnv, proxyFor, type Proxies } from "../../core/proxies.ts";
import {
  ensureUnitDir,
  ExecutionTable,
  failTracked,
  newTracked,
  type TrackedExecution,
} from "../execution-table.ts";

// Not `import … from "node:http"`: an ES import of a builtin reads all its exports, and
// node:http's lazy ones load Node's bundled undici (~25 ms of every `colony run`).
const { STATUS_CODES } = process.getBuiltinModule("node:http");

export const HTTP_METHODS = [
  "HTTP_GET",
  "HTTP_POST_FORM",
  "HTTP_POST_JSON",
  "HTTP_PUT_FORM",
  "HTTP_PUT_JSON",
  "HTTP_DELETE",
] as const satisfies readonly Method[];

export type HttpMethod = (typeof HTTP_METHODS)[number];

export function isHttpMethod(method: string): method is HttpMethod {
  return (HTTP_METHODS as readonly string[]).includes(method);
}

export interface HttpExecutorOptions {
  /** Bytes of the body kept in the context as `http_body` (default 64 KiB; the output file has all). */
  maxContextBody?: number;
  /** How long a finished execution stays known (logStream, EXECUTION_EXISTS); default 10 min (of those whose result was taken, only the newest 100). */
  retainFinishedMs?: number;
  /** The User-Agent sent unless the task sets one (default `colony`). */
  userAgent?: string;
  /** TLS for https:// URLs (the `http:` config): see HttpTls. */
  tls?: HttpTls;
  /** Proxies (core/proxies.ts); default: proxiesFromEnv(process.env) when the executor is made. */
  proxies?: Proxies;
}

/**
 * TLS of every https:// call, as PEM text (config.ts readHttpTls reads the files):
 * `ca` is trusted besides the CAs Node trusts (its own, and NODE_EXTRA_CA_CERTS);
 * `cert` and `key` are presented to servers that ask for a client certificate (mTLS).
 */
export interface HttpTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/** undici's connect options for `tls`: Node's CAs kept (a bare `ca` would replace them). */
function connectOptions(tls: HttpTls): Record<string, unknown> {
  const { getCACertificates } = process.getBuiltinModule("node:tls");
  return {
    ...(tls.ca ? { ca: [...getCACertificates("default"), tls.ca] } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  };
}

interface HttpExecution extends TrackedExecution {
  abort: AbortController;
}

/** What a request is made of, derived from the task alone (also used by the ant agent). */
export interface HttpCall {
  verb: "GET" | "POST" | "PUT" | "DELETE";
  url: URL;
  headers: Record<string, string>;
  body?: string;
}

const VERBS: Record<HttpMethod, HttpCall["verb"]> = {
  HTTP_GET: "GET",
  HTTP_POST_FORM: "POST",
  HTTP_POST_JSON: "POST",
  HTTP_PUT_FORM: "PUT",
  HTTP_PUT_JSON: "PUT",
  HTTP_DELETE: "DELETE",
};

function hasHeader(headers: Record<string, string>, name: string): boolean {
  const lower = name.toLowerCase();
  return Object.keys(headers).some((k) => k.toLowerCase() === lower);
}

/** The task's own variables, string values rendered with every value the task sees. */
function bodyFields(request: ExecutionRequest): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(request.variables)) values[name] = v.value;
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(request.task.variables) as [string, Variable][]) {
    out[name] =
      typeof v.value === "string" ? renderTemplate(v.value, values, `variables.${name}`) : v.value;
  }
  return out;
}

/** Builds the HTTP call of a task; a ColonyError when its url cannot be used. */
export function httpCall(request: ExecutionRequest, userAgent = "colony"): HttpCall {
  const method = request.method;
  if (!isHttpMethod(method)) {
    throw new ExecutorError("COLONY_HTTP_METHOD", `the HTTP executor cannot run ${method} tasks`);
  }
  const text = request.task.url;
  let url: URL;
  try {
    url = new URL(text ?? "");
  } catch {
    throw new ExecutorError(
      "COLONY_HTTP_BAD_URL",
      `task ${request.task.taskType}: url '${text ?? ""}' is not an absolute http(s) URL`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ExecutorError(
      "COLONY_HTTP_BAD_URL",
      `task ${request.task.taskType}: url '${text}' must start with http:// or https://`,
    );
  }
  for (const [k, v] of Object.entries(request.task.query)) url.searchParams.append(k, v);
  const headers: Record<string, string> = { ...request.task.headers };
  if (!hasHeader(headers, "user-agent")) headers["user-agent"] = userAgent;
  if (!hasHeader(headers, "accept")) headers.accept = "*/*";
  const verb = VERBS[method];
  const fields = bodyFields(request);
  let body: string | undefined;
  if (method === "HTTP_POST_FORM" || method === "HTTP_PUT_FORM") {
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(fields)) {
      form.append(k, typeof v === "string" ? v : JSON.stringify(v));
    }
    body = form.toString();
    if (!hasHeader(headers, "content-type")) {
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
  } else if (
    method === "HTTP_POST_JSON" ||
    method === "HTTP_PUT_JSON" ||
    (method === "HTTP_DELETE" && Object.keys(fields).length > 0)
  ) {
    body = JSON.stringify(fields);
    if (!hasHeader(headers, "content-type")) headers["content-type"] = "application/json";
  }
  return { verb, url, headers, ...(body === undefined ? {} : { body }) };
}

function describeRequestError(
  error: unknown,
  url: URL,
  tls: HttpTls = {},
  proxy?: string,
): { code: string; message: string } {
  const e = error as { code?: string; message?: string };
  const message = e.message || String(error);
  if (proxy) {
    // What the proxy said to CONNECT (undici: "Proxy response (407) !== 200 when HTTP
    // Tunneling"), or a connection to the proxy that failed: the server was not reached.
    const status = /Proxy response \((\d+)\)/.exec(message)?.[1];
    if (
      status ||
      /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|UND_ERR_CONNECT/.test(e.code ?? "")
    ) {
      const said = status
        ? `the proxy answered ${status} ${STATUS_CODES[Number(status)] ?? ""}`.trim()
        : message;
      const hint =
        status === "407"
          ? "it wants credentials: put them in the proxy's URL (http://user:password@proxy:3128)"
          : status
            ? "it would not connect colony to the server"
            : "check that the proxy is up, or list the host in NO_PROXY";
      return {
        code: "COLONY_HTTP_UNREACHABLE",
        message: `${url.origin} through the proxy ${redactUrl(proxy)}: ${said}; ${hint} (the task retries per its retry setting)`,
      };
    }
  }
  // "connect ECONNREFUSED 127.0.0.1:1" names its code; "self-signed certificate" does
  // not, so its code (DEPTH_ZERO_SELF_SIGNED_CERT) is added. undici's own codes
  // (UND_ERR_...) say less than their messages.
  const why =
    e.code && !e.code.startsWith("UND_ERR") && !message.includes(e.code)
      ? `${message} (${e.code})`
      : message;
  const code = e.code ?? "";
  const tlsFailure = (hint: string) => ({
    code: "COLONY_HTTP_TLS",
    message: `${url.origin}: ${why}; ${hint} (the task retries per its retry setting)`,
  });
  // The server's certificate: colony does not trust whoever signed it.
  if (/ISSUER|SELF_SIGNED|LEAF_SIGNATURE|UNTRUSTED/.test(code)) {
    return tlsFailure(
      tls.ca
        ? "the server's certificate is not signed by http.ca_file nor by a CA Node trusts: give colony the CA that signed it"
        : "to trust the server's certificate, give colony its CA: http.ca_file in colony.yaml, or NODE_EXTRA_CA_CERTS=/path/to/ca.pem in colony's environment",
    );
  }
  // The server asked for a client certificate colony did not present, or refused the
  // one it presented. Over TLS 1.2 the handshake fails with an alert saying which;
  // over TLS 1.3 the handshake completes first and the server then closes the
  // connection, which undici reports only as "other side closed".
  const asked =
    "the server asks for a client certificate: set http.cert_file and http.key_file in colony.yaml";
  const refused =
    "the server refused colony's client certificate (http.cert_file): it must be signed by a CA the server trusts, and valid now";
  if (/ALERT_CERTIFICATE_REQUIRED|ALERT_HANDSHAKE_FAILURE/.test(code)) {
    return tlsFailure(tls.cert ? refused : asked);
  }
  if (
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|DECRYPT_ERROR|ACCESS_DENIED)/.test(code)
  ) {
    return tlsFailure(refused);
  }
  const closed = e as { socket?: { bytesRead?: number } };
  if (
    url.protocol === "https:" &&
    ((code === "UND_ERR_SOCKET" && closed.socket?.bytesRead === 0) ||
      (code === "ECONNRESET" && /secure TLS connection/.test(message)))
  ) {
    return {
      code: "COLONY_HTTP_UNREACHABLE",
      message: `${url.origin}: ${why}; the server closed the connection before answering, as one that wants client certificates does when ${
        tls.cert
          ? "it refuses colony's (http.cert_file: it must be signed by a CA the server trusts, and valid now)"
          : "colony presents none (set http.cert_file and http.key_file in colony.yaml)"
      }; else check that the server is up (the task retries per its retry setting)`,
    };
  }
  if (/CERT|TLS|SSL/.test(code)) {
    return tlsFailure(
      "the server's certificate is refused (expired, or not for this host name): fix it there or call the name it is for",
    );
  }
  return {
    code: "COLONY_HTTP_UNREACHABLE",
    message: `${url.origin}: ${why}; check the url and that the server is up (the task retries per its retry setting)`,
  };
}

function closeStream(out: WriteStream): Promise<void> {
  return new Promise((resolve) => {
    out.end(() => resolve());
    out.once("error", () => resolve());
  });
}

function write(out: WriteStream, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    out.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}

export function createHttpExecutor(options: HttpExecutorOptions = {}): Executor {
  const maxContextBody = options.maxContextBody ?? 64 * 1024;
  const userAgent = options.userAgent ?? "colony";
  const table = new ExecutionTable<HttpExecution>("http", options.retainFinishedMs);
  let dispatcher: Dispatcher | undefined;
  const proxies = options.proxies ?? proxiesFromEnv();

  async function perform(e: HttpExecution, call: HttpCall, out: WriteStream): Promise<void> {
    let result: ExecutionResult;
    try {
      const http = await undici();
      // An https:// proxy is trusted as the servers are (http.ca_file added to Node's CAs).
      dispatcher ??= proxiedDispatcher(
        http,
        proxies,
        options.tls ? connectOptions(options.tls) : undefined,
        options.tls?.ca ? connectOptions({ ca: options.tls.ca }) : undefined,
      ).compose(http.interceptors.redirect({ maxRedirections: 20 }));
      const response = await http.request(call.url, {
        method: call.verb,
        headers: call.headers,
        ...(call.body === undefined ? {} : { body: call.body }),
        signal: e.abort.signal,
        dispatcher,
      });
      const kept: Buffer[] = [];
      let keptBytes = 0;
      let truncated = false;
      for await (const chunk of response.body) {
        const bytes = chunk as Buffer;
        await write(out, bytes);
        if (keptBytes < maxContextBody) {
          kept.push(bytes);
          keptBytes += bytes.byteLength;
        } else truncated = true;
      }
      await closeStream(out);
      let text = Buffer.concat(kept).toString("utf8");
      if (keptBytes > maxContextBody) {
        text = text.slice(0, maxContextBody);
        truncated = true;
      }
      let body: unknown = text;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
      }
      const type = headers["content-type"] ?? "";
      if (!truncated && /\bjson\b/i.test(type) && text.trim() !== "") {
        try {
          body = JSON.parse(text);
        } catch {
          body = text;
        }
      }
      const status = response.statusCode;
      const context: Record<string, unknown> = {
        http_status: status,
        http_body: body,
        http_headers: headers,
        ...(truncated ? { http_body_truncated: true } : {}),
      };
      const ok = status >= 200 && status < 300;
      result = ok
        ? { exitCode: 0, killed: false, context }
        : {
            exitCode: status,
            killed: false,
            context,
            errorCode: "COLONY_HTTP_STATUS",
            error:
              `${call.verb} ${call.url.href} answered ${status} ${response.statusText || (STATUS_CODES[status] ?? "")}`.trim(),
          };
    } catch (error) {
      await closeStream(out);
      if (e.cancelled || e.abort.signal.aborted) {
        result = { exitCode: null, killed: true, error: `${call.verb} ${call.url.href} cancelled` };
      } else {
        const d = describeRequestError(error, call.url, options.tls, proxyFor(proxies, call.url));
        result = { exitCode: null, killed: false, errorCode: d.code, error: d.message };
      }
    }
    table.finish(e, result);
  }

  async function start(request: ExecutionRequest): Promise<Record<string, unknown>> {
    const id = request.executionId;
    const e = table.add({
      ...newTracked(id, request.unitDir),
      abort: new AbortController(),
    });
    let call: HttpCall;
    let out: WriteStream;
    try {
      call = httpCall(request, userAgent);
      await ensureUnitDir(request.unitDir);
      out = createWriteStream(e.outPath, { flags: "a", mode: 0o600 });
      await new Promise<void>((resolve, reject) => {
        out.once("open", () => resolve());
        out.once("error", reject);
      });
    } catch (error) {
      table.remove(id);
      failTracked(e, error as Error);
      throw error;
    }
    void perform(e, call, out);
    return { url: call.url.href, verb: call.verb };
  }

  return {
    methods: HTTP_METHODS,
    async isInstalled() {
      return true;
    },
    start,
    wait: (id) => table.wait(id),
    async run(request) {
      await start(request);
      return table.wait(request.executionId);
    },
    async cancel(id) {
      const e = table.requireRunning(id);
      e.cancelled = true;
      e.abort.abort();
    },
    logStream: (request: LogStreamRequest) => table.logStream(request),
    async close() {
      // An HTTP call cannot outlive this process (nothing could re-attach to it): the
      // running ones end here, and their tasks are retried per policy after a restart.
      const running = table.running();
      table.close();
      for (const e of running) {
        e.cancelled = true;
        e.abort.abort();
      }
      await dispatcher?.close().catch(() => undefined);
      dispatcher = undefined;
    },
  };
}
