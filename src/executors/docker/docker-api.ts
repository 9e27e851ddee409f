/**
 * A small client of the Docker Engine API (the same HTTP API `docker` speaks) over the
 * engine's Unix socket, TCP, or TLS with a client certificate (`dockerTls`), with
 * node:http(s): JSON calls, streamed responses (logs, attach, pull progress, archives),
 * streamed request bodies (archives), and the hijacked connection `attach` needs to
 * feed stdin.
 * Unversioned paths: the engine answers in its own API version (>= 1.25 has every field
 * colony uses).
 */
import { existsSync, readFileSync } from "node:fs";
import {
  request as httpRequest,
  Agent,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import type { Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import type { ConnectionOptions } from "node:tls";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ExecutorError } from "../../core/errors.ts";

/** The TLS keys of the `docker:` config (container-options.ts), as files. */
export interface DockerTlsSettings {
  tls_verify?: boolean;
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
}

export interface DockerApiOptions extends DockerTlsSettings {
  /** unix:///var/run/docker.sock (default), tcp://host:port, http(s)://host:port or a socket path. */
  host?: string;
  /** Where DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_TLS and DOCKER_CERT_PATH are read (process.env). */
  env?: NodeJS.ProcessEnv;
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
  /** An https:// address: TLS whatever else is set. */
  https?: true;
}

/** The port of a TCP engine without one in its address: Docker's, 2376 with TLS. */
const PLAIN_PORT = 2375;
const TLS_PORT = 2376;

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
    // The port is left out when none is written: TLS, known later, makes it 2376.
    return {
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      describe: withScheme,
    };
  }
  if (url.protocol === "https:") {
    return { hostname: url.hostname, port: Number(url.port || TLS_PORT), describe: h, https: true };
  }
  throw new ExecutorError(
    "COLONY_DOCKER_HOST",
    `docker.host '${h}' is not supported; use unix:///var/run/docker.sock, tcp://host:2375, tcp://host:2376 with TLS (docker.tls_verify, ca_file, cert_file, key_file) or http(s)://host:port`,
  );
}

/**
 * Where and how to reach the engine: its address (parseDockerHost), the TLS options of
 * the connection (dockerTls) and, for TCP without a port, Docker's: 2376 with TLS, else
 * 2375.
 */
export function dockerTarget(options: DockerApiOptions = {}): Target & { tls?: ConnectionOptions } {
  const env = options.env ?? process.env;
  const target = parseDockerHost(options.host, env);
  const tls = dockerTls(options, target, env);
  if (!target.socketPath) target.port ??= tls ? TLS_PORT : PLAIN_PORT;
  return tls ? { ...target, tls } : target;
}

/**
 * The TLS options of the connection to a TCP engine, or undefined for plain HTTP. As
 * the Docker CLI decides it: the config's TLS keys when any is set (`tls_verify`,
 * default true; `ca_file`, else the system's CAs; `cert_file` and `key_file`, colony's
 * client certificate); else DOCKER_TLS_VERIFY (TLS, the engine verified) or DOCKER_TLS
 * (TLS, not verified) with ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH (default
 * ~/.docker), each when present; else TLS only for an https:// address. Files are read
 * here: one that cannot be read is a COLONY_DOCKER_TLS error naming it.
 */
export function dockerTls(
  settings: DockerTlsSettings,
  target: Target,
  env: NodeJS.ProcessEnv = process.env,
): ConnectionOptions | undefined {
  const { tls_verify, ca_file, cert_file, key_file } = settings;
  const configured = [tls_verify, ca_file, cert_file, key_file].some((v) => v !== undefined);
  if (target.socketPath) {
    if (!configured) return undefined; // DOCKER_TLS* left over for another engine
    throw tlsError(
      `docker.tls_verify, ca_file, cert_file and key_file apply to a TCP engine, and docker.host is the Unix socket ${target.describe}; set docker.host to tcp://host:2376`,
    );
  }
  let verify: boolean;
  let files: Partial<Record<"ca" | "cert" | "key", PemFile>>;
  if (configured) {
    if ((cert_file === undefined) !== (key_file === undefined)) {
      throw tlsError(
        "docker.cert_file and docker.key_file go together: set both (colony's client certificate and its key) or neither",
      );
    }
    verify = tls_verify ?? true;
    files = {
      ...(ca_file !== undefined ? { ca: { what: "docker.ca_file", path: ca_file } } : {}),
      ...(cert_file !== undefined ? { cert: { what: "docker.cert_file", path: cert_file } } : {}),
      ...(key_file !== undefined ? { key: { what: "docker.key_file", path: key_file } } : {}),
    };
  } else if (env.DOCKER_TLS_VERIFY || env.DOCKER_TLS) {
    verify = Boolean(env.DOCKER_TLS_VERIFY);
    const dir = env.DOCKER_CERT_PATH || join(homedir(), ".docker");
    const present = (name: string) => {
      const path = join(dir, name);
      return existsSync(path)
        ? { [name.slice(0, -4)]: { what: `DOCKER_CERT_PATH's ${name}`, path } }
        : {};
    };
    files = { ...present("ca.pem"), ...present("cert.pem"), ...present("key.pem") };
  } else if (target.https) {
    verify = true;
    files = {};
  } else {
    return undefined;
  }
  const ca = readPem(files.ca);
  const cert = readPem(files.cert);
  const key = readPem(files.key);
  return {
    rejectUnauthorized: verify,
    ...(ca ? { ca } : {}),
    ...(cert && key ? { cert, key } : {}),
  };
}

interface PemFile {
  /** The key it was set by, for errors. */
  what: string;
  path: string;
}

function readPem(file: PemFile | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw tlsError(
      `cannot read ${file.what} '${file.path}' (${code}); give a PEM file colony can read`,
    );
  }
}

/** OpenSSL's verdicts on a peer certificate colony does not trust (node:tls error codes). */
const UNTRUSTED = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** A TLS failure on the way to the engine as a COLONY_DOCKER_TLS error saying what to fix. */
function tlsFailure(err: Error, where: string): ExecutorError | undefined {
  const code = String((err as NodeJS.ErrnoException).code ?? "");
  // OpenSSL's text is `...:SSL routines:<function>:<reason>:<file>:<line>:`: its reason.
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(err.message)?.[1] ?? err.message;
  const what = `${reason.trim()}${code && !reason.includes(code) ? ` (${code})` : ""}`;
  if (UNTRUSTED.has(code)) {
    const fix =
      code === "ERR_TLS_CERT_ALTNAME_INVALID"
        ? "its certificate is not for this host name: address the engine by a name or IP its certificate lists (dockerd --tlscert)"
        : "give the CA that signed the engine's certificate as docker.ca_file (or DOCKER_CERT_PATH's ca.pem)";
    return tlsError(`colony does not trust the Docker engine at ${where}: ${what}; ${fix}`, err);
  }
  if (/certificate required|bad certificate|unknown ca|certificate unknown/i.test(err.message)) {
    return tlsError(
      `the Docker engine at ${where} refused colony's client certificate: ${what}; set docker.cert_file and docker.key_file (or DOCKER_CERT_PATH's cert.pem and key.pem) to a certificate signed by the CA the engine trusts (dockerd --tlscacert)`,
      err,
    );
  }
  if (
    code === "ERR_SSL_WRONG_VERSION_NUMBER" ||
    /wrong version number|packet length too long/i.test(err.message)
  ) {
    return tlsError(
      `the Docker engine at ${where} does not speak TLS there: ${what}; check the port (2376 is TLS, 2375 plain), or leave docker.tls_verify, ca_file, cert_file and key_file (and DOCKER_TLS_VERIFY) unset for a plain engine`,
      err,
    );
  }
  return undefined;
}

function tlsError(message: string, cause?: Error): ExecutorError {
  return new ExecutorError("COLONY_DOCKER_TLS", message, cause ? { cause } : {});
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
  const target = dockerTarget(options);
  const tls = target.tls;
  const pooled = { keepAlive: true, maxSockets: 64 };
  const agent = tls ? new HttpsAgent({ ...pooled, ...tls }) : new Agent(pooled);
  const request = tls ? httpsRequest : httpRequest;
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
      // With TLS, the connections of streams (no agent) need the options themselves.
      ...tls,
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
    if (tls) {
      const failure = tlsFailure(err, target.describe);
      if (failure) return failure;
    }
    return err instanceof ExecutorError
      ? err
      : new ExecutorError("COLONY_DOCKER_API", `Docker engine call failed: ${err.message}`, {
          retryable: true,
          cause: err,
        });
  }

  /** The engine's answer outside 2xx; a TLS engine spoken to in plain HTTP says so. */
  function refused(method: string, path: string, status: number, text: string): Error {
    const message = errorMessage(text);
    if (!tls && status === 400 && /HTTP request to an HTTPS server/i.test(message)) {
      return tlsError(
        `the Docker engine at ${target.describe} speaks TLS (it answered: ${message.trim()}); set docker.tls_verify, ca_file, cert_file and key_file in colony.yaml (or DOCKER_TLS_VERIFY and DOCKER_CERT_PATH)`,
      );
    }
    return new DockerApiError(status, `${method} ${path}: ${status} ${message}`);
  }

  function send(method: string, path: string, o: DockerCall, streaming: boolean) {
    return new Promise<IncomingMessage>((resolve, reject) => {
      /** An error of the body being uploaded (a file that cannot be read...), not the engine's. */
      let uploadError: Error | undefined;
      const req = request(base(method, path, o, streaming), (res) => {
        if ((res.statusCode ?? 500) >= 300) {
          readBody(res).then(
            (text) => reject(refused(method, path, res.statusCode ?? 500, text)),
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
        const req = request(opts);
        req.on("upgrade", (_res, socket, head) => {
          if (head.length > 0) socket.unshift(head);
          resolve(socket);
        });
        req.on("response", (res) => {
          readBody(res).then(
            (text) => reject(refused("POST", path, res.statusCode ?? 500, text)),
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
