/**
 * Helpers for tests of remote ants: a real server (optionally TLS) with short ant
 * timings, tokens, jobs submitted to its engine, and a raw WebSocket ant that a test
 * drives frame by frame.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { parseJobDefinition } from "../../src/core/definition-parser.ts";
import type { JobRequest, TaskExecution } from "../../src/core/job-request.ts";
import { startServer, type RunningServer } from "../../src/server/server.ts";
import { makeTestCerts, type TestCerts } from "./tls-certs.ts";
import { tempDir } from "./cli.ts";
import { http, testConfig, waitUntil } from "./server-harness.ts";

export interface AntTestServer {
  server: RunningServer;
  url: string;
  wsUrl: string;
  port: number;
  adminToken: string;
  antToken: string;
  certs?: TestCerts;
  /** PEM text of the CA, with TLS. */
  ca?: string;
  logs: string[];
  submit(yaml: string, params?: Record<string, unknown>): Promise<JobRequest>;
  finished(id: number): Promise<{ job: JobRequest; tasks: TaskExecution[] }>;
  token(role: "reader" | "writer" | "admin" | "ant", name: string): Promise<string>;
  ants(): Promise<{
    items: { ant_id: string; load: number; state: string }[];
    waiting: {
      job_request_id: number;
      execution_id: string | null;
      reason: "busy" | "no_ant";
      left_pending: boolean;
    }[];
    waiting_total: number;
  }>;
  close(): Promise<void>;
}

export async function startAntServer(
  options: { tls?: boolean; yaml?: string; port?: number } = {},
): Promise<AntTestServer> {
  const dir = tempDir("colony-ants-");
  const certs = options.tls ? makeTestCerts(dir.path) : undefined;
  const configOn = (port: number) =>
    testConfig(dir.path, {
      yaml:
        options.yaml ??
        "ant:\n  ping_interval: 500ms\n  reconnect_grace: 1s\n  poll_delay: 100ms\nmax_parallel_tasks: 64\n",
      overrides: {
        port,
        ...(certs ? { tlsCert: certs.serverCert, tlsKey: certs.serverKey } : {}),
      },
    });
  const logs: string[] = [];
  const server = await startServer(configOn(options.port ?? 0), { log: (m) => logs.push(m) });
  const ca = certs ? readFileSync(certs.caCert, "utf8") : undefined;
  const adminToken = readFileSync(server.adminTokenFile!, "utf8").trim();
  const port = Number(new URL(server.url).port);
  const token = async (role: string, name: string) => {
    const res = await http(`${server.url}/api/tokens`, {
      headers: { authorization: adminToken },
      json: { role, name },
      ...(certs ? { ca: certs.caCert } : {}),
    });
    if (res.status !== 201) throw new Error(`token: ${res.status} ${res.text}`);
    return res.json<{ token: string }>().token;
  };
  const antToken = await token("ant", "test-ants");
  const engine = () => server.runtime.engine;
  return {
    get server() {
      return server;
    },
    url: server.url,
    wsUrl: `${server.url.replace(/^http/, "ws")}/ws/ants`,
    port,
    adminToken,
    antToken,
    ...(certs ? { certs, ca } : {}),
    logs,
    submit: (yaml, params) => engine().submit({ definition: parseJobDefinition(yaml), params }),
    async finished(id) {
      const job = await engine().waitFor(id);
      return { job, tasks: (await engine().getJob(id)).tasks };
    },
    token,
    async ants() {
      const res = await http(`${server.url}/api/ants`, {
        headers: { authorization: adminToken },
        ...(certs ? { ca: certs.caCert } : {}),
      });
      return res.json();
    },
    async close() {
      const ids = engine().activeJobIds();
      await Promise.all(
        ids.map((id) =>
          engine()
            .cancel(id)
            .catch(() => undefined),
        ),
      );
      server.app.server.closeAllConnections();
      await server.close({ graceMs: 0 });
      dir.remove();
    },
  };
}

export type Frame = Record<string, unknown>;

/** A WebSocket ant a test drives by hand. */
export class RawAnt {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  #waiters: Array<(f: Frame) => void> = [];
  #echo: Frame | undefined;
  closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, options: { token?: string; ca?: string; query?: boolean } = {}) {
    const target =
      options.query && options.token
        ? `${url}?authorization=${encodeURIComponent(options.token)}`
        : url;
    this.ws = new WebSocket(target, {
      ...(options.token && !options.query ? { headers: { authorization: options.token } } : {}),
      ...(options.ca ? { ca: options.ca } : {}),
    });
    this.ws.on("message", (data) => {
      const frame = JSON.parse(data.toString()) as Frame;
      if (this.#echo && frame.type === undefined) {
        this.send({ ...frame, status: "COMPLETED", ...this.#echo });
        return;
      }
      const w = this.#waiters.shift();
      if (w) w(frame);
      else this.frames.push(frame);
    });
    this.ws.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      this.ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Opens; the status code when the server refused the upgrade. */
  opened(): Promise<number> {
    return new Promise((resolve) => {
      this.ws.once("open", () => resolve(101));
      this.ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    });
  }

  static async connect(
    url: string,
    registration: Frame,
    options: { token: string; ca?: string },
  ): Promise<RawAnt> {
    const ant = new RawAnt(url, options);
    const status = await ant.opened();
    if (status !== 101) throw new Error(`/ws/ants answered ${status}`);
    ant.send(registration);
    return ant;
  }

  send(frame: Frame | string): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  next(timeoutMs = 10_000): Promise<Frame> {
    const ready = this.frames.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== got);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      const got = (f: Frame) => {
        clearTimeout(timer);
        resolve(f);
      };
      this.#waiters.push(got);
    });
  }

  /** From now on answers every request with its echo and `status` (the seed's samples). */
  echo(extra: Frame = {}): void {
    this.#echo = extra;
    for (const f of this.frames.splice(0)) this.send({ ...f, status: "COMPLETED", ...extra });
  }

  close(): Promise<unknown> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    this.ws.close();
    return this.closed;
  }
}

export async function waitForAnt(
  s: AntTestServer,
  antId: string,
  state = "connected",
): Promise<void> {
  await waitUntil(`ant ${antId} ${state}`, async () =>
    (await s.ants()).items.some((a) => a.ant_id === antId && a.state === state),
  );
}

/**
 * Waits until a `colony ant` process says it is connected and `s` lists it as `antId`;
 * a timeout says what the agent wrote on stderr.
 */
export async function untilAntConnected(
  s: AntTestServer,
  run: { stdout(): string; stderr(): string },
  antId: string,
): Promise<void> {
  await waitUntil(`${antId} connected`, () => /connected to/.test(run.stdout()), 20_000).catch(
    (error: Error) => {
      throw new Error(`${error.message}: ${run.stderr()}`);
    },
  );
  await waitForAnt(s, antId);
}

export { join, waitUntil };
