/**
 * The colony server process: the embedded runtime (store, engine, executors) behind the
 * HTTP app, listening on http or https (with optional client-certificate verification),
 * a first admin token written to the data dir, and `{data dir}/server.json` telling the
 * CLI on this machine where the server is.
 *
 * Starting recovers what a crashed server left (the engine takes over unfinished
 * requests and re-attaches to tasks still running). Closing stops accepting, lets
 * running tasks finish for a grace period and leaves the rest to that same recovery:
 * their processes keep running and are re-attached by the next start.
 */
import { X509Certificate } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import type { ServerOptions as HttpsServerOptions } from "node:https";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { SERVER_INFO_FILE, type ServerInfo } from "../cli/client-options.ts";
import { ConfigError, readHttpTls, type Config } from "../config/config.ts";
import { ColonyError } from "../core/errors.ts";
import { openEmbedded, type Embedded } from "../runtime/embedded.ts";
import { buildApp, type App, type RouteModule, type ServerDeps } from "./app.ts";
import { Sessions } from "./auth/sessions.ts";
import { hashToken, newToken, TokenAuthenticator } from "./auth/token-authenticator.ts";
import { LiveEvents } from "./live/live-events.ts";
import { createMetrics, type ColonyMetrics } from "./metrics/metrics.ts";
import { isRole } from "./principal.ts";
import { fetchHeld, Relay } from "./relay.ts";
import { ALL_ROUTES } from "./routes.ts";
import { startUnitService, type UnitService } from "../units/unit-service.ts";
import { unitView } from "./api/units.ts";

export interface StartServerOptions {
  /** Fastify's request log on stdout (default off). */
  logger?: boolean;
  /** Route groups to serve (default ALL_ROUTES); tests add their own. */
  routes?: RouteModule[];
  /** Where the server reports what it does (recovery, failures); default stderr. */
  log?: (message: string) => void;
}

export interface RunningServer {
  /** The URL this server answers on from this machine, e.g. http://127.0.0.1:7777. */
  url: string;
  /** The URL clients and job processes are told to use (config.base_url or `url`). */
  baseUrl: string;
  app: App;
  runtime: Embedded;
  auth: TokenAuthenticator;
  /** The admin token file, when auth is on (it may be absent if someone removed it). */
  adminTokenFile?: string;
  /** Whether this start created the first admin token (and wrote adminTokenFile). */
  adminTokenCreated: boolean;
  /**
   * Where a browser opens the dashboard: with auth on, a one-time login link
   * (`/login?once=...`, valid 10 minutes) for the admin token's holder; else `/`.
   * Undefined when auth is on and the admin token file cannot be read.
   */
  loginUrl?: string;
  /** The live event log (GET /api/events): features publish ant:*, unit:*... here. */
  live: LiveEvents;
  /** Prometheus metrics (GET /metrics): features register theirs here. */
  metrics: ColonyMetrics;
  /**
   * Graceful stop: stops accepting connections, lets running tasks finish for up to
   * `graceMs` (default config.shutdownGraceMs), then leaves the rest to recovery at the
   * next start, closes the store and removes server.json. Idempotent.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

export class ServerStartError extends ColonyError {
  constructor(message: string, cause?: unknown) {
    super("COLONY_SERVER_START", message, { status: 500, cause });
  }
}

/** How long in-flight requests (log followers, say) may take to end once closing. */
const REQUEST_DRAIN_MS = 2000;

/** How often a running server renews its record in the store (Store.registerServer). */
const SERVER_HEARTBEAT_MS = 15_000;
/** A node id another server renewed this recently is taken. */
const NODE_ID_HELD_MS = 4 * SERVER_HEARTBEAT_MS;

/**
 * Servers sharing a store need their own node ids: /jobs processes are recovered at
 * start by node id, and a second server of the same id would take over (and end) the
 * processes of the first. Refuses to start while another server of this id runs.
 */
async function refuseTakenNodeId(runtime: Embedded, nodeId: string): Promise<void> {
  const now = Date.now();
  const other = (await runtime.store.listServers()).find(
    (s) =>
      s.nodeId === nodeId &&
      s.id !== runtime.serverId &&
      now - s.seenAt.getTime() < NODE_ID_HELD_MS,
  );
  if (!other) return;
  const ago = Math.max(0, Math.round((now - other.seenAt.getTime()) / 1000));
  const wait = Math.ceil((NODE_ID_HELD_MS - (now - other.seenAt.getTime())) / 1000);
  throw new ServerStartError(
    `node_id '${nodeId}' is taken by another server of this store (${other.url}, seen ${ago} s ago): ` +
      `give each server that shares a store its own node_id (node_id in colony.yaml, or COLONY_NODE_ID); ` +
      `if that server is gone for good, start again in ${wait} s`,
  );
}

export async function startServer(
  config: Config,
  options: StartServerOptions = {},
): Promise<RunningServer> {
  const log = options.log ?? ((m: string) => process.stderr.write(`colony server: ${m}\n`));
  for (const [cn, role] of Object.entries(config.tls?.clientCnRoles ?? {})) {
    if (!isRole(role)) {
      throw new ConfigError(
        `tls.client_cn_roles: '${cn}' maps to unknown role '${role}'; use reader, writer, admin or ant`,
      );
    }
  }
  const https = config.tls ? readTls(config.tls) : undefined;
  const httpTls = readHttpTls(config.http);
  refuseSecondServer(config.dataDir);

  const runtime = await openEmbedded({
    dataDir: config.dataDir,
    storeUrl: config.storeUrl,
    maxParallelTasks: config.maxParallelTasks,
    killGraceMs: config.killGraceMs,
    engine: { log },
    containers: { docker: config.docker, kubernetes: config.kubernetes, nodeId: config.nodeId },
    ...(httpTls ? { httpTls } : {}),
    // The job hook, artifacts, schedules (runtime/async-runtime.ts, docs/hook.md).
    asyncActions: {
      orchestrator: config.nodeId,
      maxClockSkewMs: config.hook.maxClockSkewMs,
      artifactExpiresAfterMs: config.artifacts.expiresAfterMs,
      artifactMaxBytes: config.artifacts.maxBytes,
      ...(config.schedules.timezone ? { scheduleTimezone: config.schedules.timezone } : {}),
    },
    redisUrl: config.messaging.redisUrl,
    // The built-in ant's first SHELL task does not wait for the spawner to start.
    warmShell: config.ant.methods?.includes("SHELL") ?? true,
    // Remote ants on /ws/ants (src/ants/ws-endpoint.ts); the built-in ant's tags.
    ants: {
      id: `${config.nodeId}/builtin`,
      tags: config.ant.tags,
      ...(config.ant.methods ? { methods: config.ant.methods } : {}),
      pollDelayMs: config.ant.pollDelayMs,
      reconnectGraceMs: config.ant.reconnectGraceMs,
    },
  });
  let app: App | undefined;
  let units: UnitService | undefined;
  const live = new LiveEvents();
  let metrics: ColonyMetrics | undefined;
  try {
    // Before anything recovers: /jobs processes are recovered by node id.
    await refuseTakenNodeId(runtime, config.nodeId);
    const auth = new TokenAuthenticator({
      store: runtime.store,
      disabled: !config.auth.enabled,
      clientCnRoles: config.tls?.clientCnRoles,
      log,
    });
    const adminTokenCreated = config.auth.enabled
      ? await ensureAdminToken(runtime, config.auth.adminTokenFile)
      : false;

    // Work units: recovered from their files, control socket listening (docs/units.md).
    units = await startUnitService(config, runtime, log, (unit, what) =>
      live.publish(`unit:${what}`, unitView(unit)),
    );
    const scheme = config.tls ? "https" : "http";
    live.attach(runtime.engine.events);
    const sessions = new Sessions({ store: runtime.store });
    // Output and artifacts other servers of the store hold, fetched from them (relay.ts).
    const relay = new Relay(runtime.secretKey);
    runtime.engine.useRemoteOutput((execution, o) => {
      const query = new URLSearchParams();
      if (o.offset !== undefined) query.set("offset", String(o.offset));
      if (o.tail) query.set("tail", "1");
      if (o.follow) query.set("follow", "1");
      return fetchHeld(runtime.store, relay, {
        holder: execution.server!,
        path: `/api/task-executions/${execution.id}/output${query.size > 0 ? `?${query}` : ""}`,
        what: `the output of execution ${execution.id}`,
      });
    });
    runtime.asyncActions.artifacts.useRemote((artifact) =>
      fetchHeld(runtime.store, relay, {
        holder: artifact.server!,
        path: `/api/artifacts/${artifact.id}/download`,
        what: `the artifact ${artifact.id} (${artifact.name})`,
      }),
    );
    const deps: ServerDeps = {
      config,
      runtime,
      auth,
      baseUrl: config.baseUrl ?? `${scheme}://${urlHost(config.host)}:${config.port}`,
      live,
      sessions,
      relay,
      metrics: (metrics = createMetrics({
        store: runtime.store,
        events: runtime.engine.events,
        gauges: {
          colony_event_stream_clients: ["Open GET /api/events streams", () => live.subscriberCount],
          colony_dashboard_sessions: ["Dashboard sessions alive", () => sessions.size],
        },
      })),
    };
    deps.units = units.manager;
    // JOB_HOOK names the URL processes reach: read when each process starts (the real port is known after listen).
    runtime.asyncActions.hook.useBaseUrl(() => config.advertiseUrl ?? deps.baseUrl);
    app = await buildApp(deps, {
      routes: options.routes ?? ALL_ROUTES,
      logger: options.logger,
      ...(https ? { https } : {}),
    });
    try {
      await app.listen({ host: config.host, port: config.port });
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new ServerStartError(
        code === "EADDRINUSE"
          ? `port ${config.port} on ${config.host} is in use (another colony server?); stop it or choose another with --port`
          : code === "EACCES"
            ? `not allowed to listen on ${config.host}:${config.port}; ports below 1024 need privileges: choose another with --port`
            : `cannot listen on ${config.host}:${config.port}: ${(error as Error).message}`,
        error,
      );
    }
    const port = (app.server.address() as AddressInfo).port;
    const url = `${scheme}://${urlHost(localHost(config.host))}:${port}`;
    // Route modules read deps.baseUrl when they answer, so it can name the real port now.
    deps.baseUrl = config.baseUrl ?? url;
    // Where this data dir's output can be fetched by the other servers of the store,
    // renewed while it runs (a node id seen lately is taken: refuseTakenNodeId).
    const presence = {
      id: runtime.serverId,
      nodeId: config.nodeId,
      url: config.advertiseUrl ?? deps.baseUrl,
    };
    await runtime.store.registerServer(presence);
    const heartbeat = setInterval(() => {
      runtime.store.registerServer(presence).catch((error: unknown) => {
        log(`recording this server in the store failed: ${String(error)}`);
      });
    }, SERVER_HEARTBEAT_MS).unref();

    // Recovery of what a previous (crashed) server left, then claiming new work.
    await runtime.engine.start();
    // Artifact retention and cron schedules (docs/schedules.md).
    await runtime.asyncActions.start({
      engine: runtime.engine,
      schedules: config.schedules.enabled,
    });

    const adminTokenFile = config.auth.enabled ? config.auth.adminTokenFile : undefined;
    const info: ServerInfo = {
      url,
      pid: process.pid,
      nodeId: config.nodeId,
      ...(config.tls && isSelfSigned(config.tls.cert) ? { ca: config.tls.cert } : {}),
      ...(adminTokenFile ? { adminTokenFile } : {}),
      startedAt: new Date().toISOString(),
    };
    const loginUrl = !config.auth.enabled
      ? `${deps.baseUrl}/`
      : await loginLink(auth, sessions, config.auth.adminTokenFile, deps.baseUrl);
    const infoFile = join(config.dataDir, SERVER_INFO_FILE);
    writeFileAtomic(infoFile, JSON.stringify(info, null, 2) + "\n", 0o644);

    const started = app;
    let closing: Promise<void> | undefined;
    return {
      url,
      baseUrl: deps.baseUrl,
      app: started,
      runtime,
      auth,
      adminTokenFile,
      adminTokenCreated,
      ...(loginUrl ? { loginUrl } : {}),
      live,
      metrics: deps.metrics,
      close(closeOptions = {}) {
        clearInterval(heartbeat);
        // The control socket first; the units' processes keep running for the next start.
        closing ??= units!
          .close()
          .then(() =>
            stop(started, runtime, infoFile, closeOptions.graceMs ?? config.shutdownGraceMs),
          )
          .finally(() => {
            live.close();
            sessions.clear();
            deps.metrics.close();
          });
        return closing;
      },
    };
  } catch (error) {
    live.close();
    metrics?.close();
    if (app) await app.close().catch(() => undefined);
    await units?.close().catch(() => undefined);
    await runtime.close({ graceMs: 0 }).catch(() => undefined);
    throw error;
  }
}

async function stop(app: App, runtime: Embedded, infoFile: string, graceMs: number): Promise<void> {
  // Stop accepting at once; requests in flight (and log followers) get a moment to end.
  const appClosed = app.close();
  await runtime.engine.stop({ graceMs });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    appClosed,
    new Promise((resolve) => (timer = setTimeout(resolve, REQUEST_DRAIN_MS))),
  ]);
  clearTimeout(timer);
  app.server.closeAllConnections();
  await appClosed;
  // Tasks still running keep running (the spawner owns them); the next start re-attaches.
  await runtime.close({ graceMs: 0 });
  removeOwnInfoFile(infoFile);
}

/**
 * A one-time dashboard login link for the holder of the admin token file (the person
 * who started the server can read it; the link is printed only to them).
 */
async function loginLink(
  auth: TokenAuthenticator,
  sessions: Sessions,
  adminTokenFile: string,
  baseUrl: string,
): Promise<string | undefined> {
  let token: string;
  try {
    token = readFileSync(adminTokenFile, "utf8").trim();
  } catch {
    return undefined;
  }
  const principal = await auth.authenticate({ authorization: token });
  if (!principal) return undefined;
  return `${baseUrl}/login?once=${sessions.createLoginLink(principal, hashToken(token))}`;
}

function removeOwnInfoFile(file: string): void {
  try {
    const info = JSON.parse(readFileSync(file, "utf8")) as Partial<ServerInfo>;
    if (info.pid === process.pid) rmSync(file, { force: true });
  } catch {
    // absent or unreadable: nothing of ours to remove
  }
}

/**
 * Refuses to start a second server on a data dir whose server.json names a live
 * process other than this one (a server.json left by a crash names a dead one).
 */
function refuseSecondServer(dataDir: string): void {
  let info: Partial<ServerInfo>;
  try {
    info = JSON.parse(readFileSync(join(dataDir, SERVER_INFO_FILE), "utf8")) as Partial<ServerInfo>;
  } catch {
    return;
  }
  const pid = info.pid;
  if (typeof pid !== "number" || pid === process.pid || !isColonyProcess(pid)) return;
  throw new ServerStartError(
    `another colony server (pid ${pid}, ${info.url ?? "unknown URL"}) is running on the data dir ${dataDir}; ` +
      `stop it first or use another --data-dir`,
  );
}

function isColonyProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as { code?: unknown }).code === "EPERM";
  }
  try {
    // A recycled pid of an unrelated program does not count.
    return /colony|node/.test(readFileSync(`/proc/${pid}/cmdline`, "utf8"));
  } catch {
    return true; // no /proc: trust the pid
  }
}

/**
 * First start with auth on: when the store has no unrevoked admin token, makes one named
 * `admin` and writes it (only it, 0600, atomically) to `file`. The file is written
 * before the token is stored, so a failure never leaves an admin token nobody has.
 * Returns whether a token was made.
 */
export async function ensureAdminToken(runtime: Embedded, file: string): Promise<boolean> {
  const tokens = await runtime.store.listTokens();
  if (tokens.some((t) => t.role === "admin" && t.revokedAt === undefined)) return false;
  const { token, hash } = newToken();
  const tmp = writeTempFile(file, token + "\n", 0o600);
  try {
    await runtime.store.createToken({
      name: "admin",
      role: "admin",
      hash,
      createdBy: "colony server",
    });
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  try {
    renameSync(tmp, file);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw new ServerStartError(
      `cannot write the admin token file ${file}: ${(error as Error).message}`,
      error,
    );
  }
  return true;
}

function writeTempFile(file: string, text: string, mode: number): string {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  // 'wx' with the mode: the file is never readable by others, not even for a moment.
  const fd = openSync(tmp, "wx", mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

function writeFileAtomic(file: string, text: string, mode: number): void {
  const tmp = writeTempFile(file, text, mode);
  renameSync(tmp, file);
}

function readTls(tls: NonNullable<Config["tls"]>): HttpsServerOptions {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new ConfigError(`${what}: cannot read ${path}: ${(error as Error).message}`);
    }
  };
  const options: HttpsServerOptions = {
    cert: read("tls.cert (--tls-cert)", tls.cert),
    key: read("tls.key (--tls-key)", tls.key),
  };
  if (tls.clientCa) {
    // Ask for a certificate but let the handshake finish without a good one: the app then
    // answers 401 with the reason (app.ts), where a handshake abort would leave the
    // client with an opaque TLS alert. socket.authorized says whether the CA verified it.
    options.ca = read("tls.client_ca (--tls-client-ca)", tls.clientCa);
    options.requestCert = true;
    options.rejectUnauthorized = false;
  }
  return options;
}

function isSelfSigned(certFile: string): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    return cert.issuer === cert.subject && cert.checkIssued(cert);
  } catch {
    return false;
  }
}

/** A host a client on this machine can connect to (a wildcard bind is not one). */
function localHost(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::" || host === "[::]") return "::1";
  return host;
}

function urlHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
