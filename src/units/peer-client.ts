/**
 * How a node talks to a peer node: colony's own REST API (`/api/units`), authenticated
 * with a token the peer issued (role writer), over https where the peer's URL says so
 * (with `ca_file` for a private CA). Each answer is classified for the remote-work
 * loops: `unreachable` (connection refused or reset, timeout, 5xx: try again later),
 * `gone` (404: the unit is not there) or `refused` (any other 4xx: trying again cannot
 * help).
 */
import { createReadStream, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { ColonyError } from "../core/errors.ts";
import { SIGNATURE_HEADER } from "./work-signing.ts";

export interface PeerConfig {
  node_id: string;
  url: string;
  token?: string;
  token_file?: string;
  ca_file?: string;
}

/** A unit as a peer's REST API shows it (the fields remote work reads). */
export interface PeerUnitView {
  id: string;
  state_code: number;
  state: string;
  detail: string;
  stdout_size: number;
  work_type: string;
  node: string;
}

export type PeerErrorKind = "unreachable" | "gone" | "refused";

export class PeerError extends ColonyError {
  readonly kind: PeerErrorKind;
  /** The peer's HTTP status (0 when it did not answer). */
  readonly peerStatus: number;
  constructor(kind: PeerErrorKind, message: string, peerStatus = 0, cause?: unknown) {
    super(kind === "unreachable" ? "COLONY_PEER_UNREACHABLE" : "COLONY_PEER_REFUSED", message, {
      status: kind === "unreachable" ? 503 : 502,
      retryable: kind === "unreachable",
      cause,
    });
    this.kind = kind;
    this.peerStatus = peerStatus;
  }
}

export interface SubmitToPeer {
  workType: string;
  params: Record<string, string>;
  /** Idempotency key: a retried submit of the same local unit returns the same remote unit. */
  origin: string;
  stdinPath: string;
  signature?: string;
}

export class PeerClient {
  readonly nodeId: string;
  readonly url: URL;
  readonly secure: boolean;
  readonly #token: string | undefined;
  readonly #agent: http.Agent;
  readonly #timeoutMs: number;

  constructor(config: PeerConfig, options: { timeoutMs?: number; baseDir?: string } = {}) {
    this.nodeId = config.node_id;
    try {
      this.url = new URL(config.url);
    } catch {
      throw new ColonyError(
        "COLONY_CONFIG_INVALID",
        `peers: '${config.url}' (node ${config.node_id}) is not a URL; write e.g. http://127.0.0.1:7778`,
        { status: 400 },
      );
    }
    this.secure = this.url.protocol === "https:";
    if (!this.secure && this.url.protocol !== "http:") {
      throw new ColonyError(
        "COLONY_CONFIG_INVALID",
        `peers: '${config.url}' (node ${config.node_id}) must be an http or https URL`,
        { status: 400 },
      );
    }
    let token = config.token;
    if (token === undefined && config.token_file !== undefined) {
      try {
        token = readFileSync(config.token_file, "utf8").trim();
      } catch (error) {
        throw new ColonyError(
          "COLONY_CONFIG_INVALID",
          `peers: token_file of node ${config.node_id}: cannot read ${config.token_file}: ${(error as Error).message}`,
          { status: 400 },
        );
      }
    }
    this.#token = token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    const ca = config.ca_file ? readFileSync(config.ca_file) : undefined;
    this.#agent = this.secure
      ? new https.Agent({ keepAlive: true, ...(ca ? { ca } : {}) })
      : new http.Agent({ keepAlive: true });
  }

  close(): void {
    this.#agent.destroy();
  }

  async health(): Promise<{ node_id: string }> {
    return this.#json("GET", "/api/health");
  }

  async submit(input: SubmitToPeer): Promise<PeerUnitView & { result: string }> {
    const q = new URLSearchParams({ work_type: input.workType, origin: input.origin });
    if (Object.keys(input.params).length > 0) q.set("params", JSON.stringify(input.params));
    return this.#json("POST", `/api/units?${q}`, {
      signature: input.signature,
      bodyFile: input.stdinPath,
    });
  }

  status(id: string, signature?: string): Promise<PeerUnitView> {
    return this.#json("GET", `/api/units/${encodeURIComponent(id)}`, { signature });
  }

  cancel(id: string, signature?: string): Promise<{ result: string }> {
    return this.#json("POST", `/api/units/${encodeURIComponent(id)}/cancel`, { signature });
  }

  release(id: string, force: boolean, signature?: string): Promise<{ result: string }> {
    const q = force ? "?force=true" : "";
    return this.#json("POST", `/api/units/${encodeURIComponent(id)}/release${q}`, { signature });
  }

  /** The unit's output from `offset`, following until it ends. */
  async stdout(
    id: string,
    offset: number,
    options: { signature?: string; signal?: AbortSignal } = {},
  ): Promise<Readable> {
    const res = await this.#request(
      "GET",
      `/api/units/${encodeURIComponent(id)}/stdout?offset=${offset}&follow=true`,
      { ...options, stream: true },
    );
    return res;
  }

  async #json<T>(
    method: string,
    path: string,
    options: { signature?: string; bodyFile?: string } = {},
  ): Promise<T> {
    const res = await this.#request(method, path, options);
    const chunks: Buffer[] = [];
    try {
      for await (const c of res) chunks.push(c as Buffer);
    } catch (error) {
      throw new PeerError(
        "unreachable",
        `${this.nodeId} (${this.url.origin}) broke off its answer: ${(error as Error).message}`,
        0,
        error,
      );
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString("utf8")) as T;
    } catch (error) {
      throw new PeerError(
        "refused",
        `${this.nodeId} (${this.url.origin}) answered ${method} ${path.split("?")[0]} with something that is not JSON; is it a colony server?`,
        res.statusCode ?? 0,
        error,
      );
    }
  }

  #request(
    method: string,
    path: string,
    options: { signature?: string; bodyFile?: string; signal?: AbortSignal; stream?: boolean },
  ): Promise<http.IncomingMessage> {
    const url = new URL(path, this.url);
    const headers: Record<string, string> = { accept: "application/json, text/plain" };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (options.signature) headers[SIGNATURE_HEADER] = options.signature;
    if (options.bodyFile) headers["content-type"] = "application/octet-stream";
    else if (method === "POST") headers["content-length"] = "0";
    const transport = this.secure ? https : http;
    const where = `${this.nodeId} (${this.url.origin})`;
    return new Promise((resolve, reject) => {
      const req = transport.request(
        url,
        { method, headers, agent: this.#agent, signal: options.signal },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status < 400) {
            if (options.stream) res.socket?.setKeepAlive(true, 10_000);
            req.setTimeout(0);
            resolve(res);
            return;
          }
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", (error) =>
            reject(new PeerError("unreachable", `${where}: ${error.message}`, status, error)),
          );
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let message = text.slice(0, 300);
            let code: string | undefined;
            try {
              const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
              message = body.error?.message ?? message;
              code = body.error?.code;
            } catch {
              // not a colony error body
            }
            const kind: PeerErrorKind =
              status >= 500 || status === 408 || status === 429
                ? "unreachable"
                : status === 404 && code === "COLONY_UNKNOWN_UNIT"
                  ? "gone"
                  : "refused";
            reject(
              new PeerError(kind, `${where} answered ${status}: ${message}`, status, { code }),
            );
          });
        },
      );
      req.setTimeout(this.#timeoutMs, () =>
        req.destroy(Object.assign(new Error("no answer in time"), { code: "ETIMEDOUT" })),
      );
      req.on("error", (error: NodeJS.ErrnoException) => {
        if (error.name === "AbortError") return reject(error);
        const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|SSL/.test(error.code ?? "");
        reject(
          new PeerError(
            tls ? "refused" : "unreachable",
            tls
              ? `${where}: its TLS certificate is not trusted (${error.code}); set ca_file for this peer`
              : `cannot reach ${where}: ${error.code ?? error.message}`,
            0,
            error,
          ),
        );
      });
      if (options.bodyFile) {
        const body = createReadStream(options.bodyFile);
        body.on("error", (error) => req.destroy(error));
        body.pipe(req);
      } else {
        req.end();
      }
    });
  }
}
