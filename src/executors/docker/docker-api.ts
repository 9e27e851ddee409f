/**
 * A small client of the Docker Engine API (the same HTTP API `docker` speaks) over the
 * engine's Unix socket or TCP, with node:http: JSON calls, streamed responses (logs,
 * attach, pull progress, archives), streamed request bodies (archives), and the
 * hijacked connection `attach` needs to feed stdin.
 * Unversioned paths: the engine answers in its own API version (>= 1.25 has every field
 * colony uses).
 */
import {
  request as httpRequest,
  Agent,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import type { Socket } from "node:net";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ExecutorError } from "../../core/errors.ts";

export interface DockerApiOptions {
  /** unix:///var/run/docker.sock (default), tcp://host:port, http://host:port or a socket path. */
  host?: string;
  /** Per-call limit for non-streaming calls (default 120 s: creates on vfs are slow). */
  timeoutMs?: number;
}

export interface DockerCall {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** A raw request body (a tar archive...); give its content-type in headers. */
  raw?: Buffer;
  /**
   * A request body streamed as it is read (a tar archive of a directory), never held
   * whole; give its content-type in headers. Its own errors reject the call as they are.
   */
  upload?: Readable;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** An answer of the engine outside 2xx; `status` and the engine's message kept. */
export class DockerApiError extends ExecutorError {
  readonly httpStatus: number;
  constructor(httpStatus: number, message: string) {
    super("COLONY_DOCKER_API", message, { retryable: httpStatus >= 500 });
    this.httpStatus = httpStatus;
  }
}

interface Target {
  socketPath?: string;
  hostname?: string;
  port?: number;
  describe: string;
}

/**
 * The engine's address: docker.host of the config, else DOCKER_HOST (the Docker client's
 * own variable, e.g. rootless Docker's unix:///run/user/1000/docker.sock), else the
 * local socket. (loadConfig already folds DOCKER_HOST in; `colony run` and the library
 * have no config file and rely on this.)
 */
export function parseDockerHost(
  host: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Target {
  const h = host?.trim() || env.DOCKER_HOST?.trim() || "unix:///var/run/docker.sock";
  if (h.startsWith("/")) return { socketPath: h, describe: `unix://${h}` };
  // A bare host or host:port (the seed writes `host: kubernetes-host`) is a TCP engine.
  const withScheme = /^[a-z]+:\/\//.test(h) ? h : `tcp://${h}`;
  let url: URL;
  try {
    url = new URL(withScheme.replace(/^tcp:/, "http:"));
  } catch {
    throw new ExecutorError(
      "COLONY_DOCKER_HOST",
      `docker.host '${h}' is not an address; use unix:///var/run/docker.sock or tcp://host:2375`,
    );
  }
  if (url.protocol === "unix:") return { socketPath: url.pathname, describe: h };
  if (url.protocol === "http:") {
    return { hostname: url.hostname, port: Number(url.port || 2375), describe: withScheme };
  }
  throw new ExecutorError(
    "COLONY_DOCKER_HOST",
    `docker.host '${h}' is not supported; use unix:///var/run/docker.sock, tcp://host:2375 or http://host:port (TLS to the engine is not supported yet)`,
  );
}

export interface DockerApi {
  readonly describe: string;
  /** A JSON call; rejects with DockerApiError outside 2xx. */
  call<T = unknown>(method: string, path: string, options?: DockerCall): Promise<T>;
  /** A call whose response body is read as it comes (the caller consumes it). */
  stream(method: string, path: string, options?: DockerCall): Promise<IncomingMessage>;
  /** POST that takes over the connection (attach with stdin): the raw socket both ways. */
  hijack(path: string, options?: DockerCall): Promise<Socket>;
  close(): void;
}

function pathWithQuery(path: string, query: DockerCall["query"]): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, String(v));
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function errorMessage(text: string): string {
  try {
    const m = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof m === "string") return m;
  } catch {
    // not JSON
  }
  return text.trim() || "(no message)";
}

export function createDockerApi(options: DockerApiOptions = {}): DockerApi {
  const target = parseDockerHost(options.host);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const timeoutMs = options.timeoutMs ?? 120_000;

  function base(method: string, path: string, o: DockerCall, streaming: boolean): RequestOptions {
    const headers: Record<string, string> = { ...o.headers };
    if (o.body !== undefined) headers["content-type"] = "application/json";
    return {
      method,
      path: pathWithQuery(path, o.query),
      headers,
      // Long-lived streams get their own connection, so they never hold a pooled one.
      agent: streaming ? false : agent,
      ...(target.socketPath
        ? { socketPath: target.socketPath }
        : { hostname: target.hostname, port: target.port }),
      ...(o.signal ? { signal: o.signal } : {}),
    };
  }

  function unreachable(err: Error): ExecutorError {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ECONNREFUSED" || code === "EACCES") {
      return new ExecutorError(
        "COLONY_DOCKER_UNAVAILABLE",
        `cannot reach the Docker engine at ${target.describe} (${code}); start dockerd, or point colony at it: docker.host in colony.yaml, or DOCKER_HOST`,
        { retryable: true, cause: err },
      );
    }
    return err instanceof ExecutorError
      ? err
      : new ExecutorError("COLONY_DOCKER_API", `Docker engine call failed: ${err.message}`, {
          retryable: true,
          cause: err,
        });
  }

  function send(method: string, path: string, o: DockerCall, streaming: boolean) {
    return new Promise<IncomingMessage>((resolve, reject) => {
      /** An error of the body being uploaded (a file that cannot be read...), not the engine's. */
      let uploadError: Error | undefined;
      const req = httpRequest(base(method, path, o, streaming), (res) => {
        if ((res.statusCode ?? 500) >= 300) {
          readBody(res).then(
            (text) =>
              reject(
                new DockerApiError(
                  res.statusCode ?? 500,
                  `${method} ${path}: ${res.statusCode} ${errorMessage(text)}`,
                ),
              ),
            reject,
          );
          return;
        }
        resolve(res);
      });
      req.on("error", (err) => reject(uploadError ?? unreachable(err)));
      if (!streaming) {
        const limit = o.timeoutMs ?? timeoutMs;
        req.setTimeout(limit, () =>
          req.destroy(
            new ExecutorError(
              "COLONY_DOCKER_TIMEOUT",
              `${method} ${path}: the Docker engine did not answer within ${limit} ms`,
              { retryable: true },
            ),
          ),
        );
      }
      if (o.upload) {
        o.upload.once("error", (err) => (uploadError ??= err));
        // A failure of either side destroys the other; the request's error rejects.
        pipeline(o.upload, req).catch(() => undefined);
        return;
      }
      req.end(o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body)));
    });
  }

  return {
    describe: target.describe,

    async call<T>(method: string, path: string, o: DockerCall = {}): Promise<T> {
      const res = await send(method, path, o, false);
      const text = await readBody(res);
      if (!text) return undefined as T;
      return (res.headers["content-type"] ?? "").includes("json")
        ? (JSON.parse(text) as T)
        : (text as T);
    },

    stream(method, path, o = {}) {
      return send(method, path, o, true);
    },

    hijack(path, o = {}) {
      return new Promise<Socket>((resolve, reject) => {
        const opts = base("POST", path, o, true);
        opts.headers = {
          ...(opts.headers as Record<string, string>),
          connection: "Upgrade",
          upgrade: "tcp",
        };
        const req = httpRequest(opts);
        req.on("upgrade", (_res, socket, head) => {
          if (head.length > 0) socket.unshift(head);
          resolve(socket);
        });
        req.on("response", (res) => {
          readBody(res).then(
            (text) =>
              reject(
                new DockerApiError(
                  res.statusCode ?? 500,
                  `POST ${path}: ${res.statusCode} ${errorMessage(text)}`,
                ),
              ),
            reject,
          );
        });
        req.on("error", (err) => reject(unreachable(err)));
        req.end();
      });
    },

    close() {
      agent.destroy();
    },
  };
}

/**
 * Demultiplexes the engine's stdout/stderr stream of a container without a TTY: frames
 * of an 8-byte header (stream type, 3 zero bytes, big-endian payload size) and the
 * payload. Emits the payloads of both streams in arrival order.
 */
export class DockerFrameDecoder extends Transform {
  #pending: Buffer = Buffer.alloc(0);
  #left = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = Buffer.alloc(0);
    while (buf.length > 0) {
      if (this.#left > 0) {
        const n = Math.min(this.#left, buf.length);
        this.push(buf.subarray(0, n));
        this.#left -= n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length < 8) {
        this.#pending = Buffer.from(buf);
        break;
      }
      this.#left = buf.readUInt32BE(4);
      buf = buf.subarray(8);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    // A truncated header at the very end carries no payload.
    done();
  }
}
