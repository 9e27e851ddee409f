/**
 * colony's configuration: one file (`colony.yaml`), validated at start by one schema
 * into a frozen object that is passed explicitly (no module reads process.env itself).
 * Precedence, lowest first: defaults, the file, environment variables, command-line flags.
 * Every refusal names the key and says what to set.
 */
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { Type, type Static } from "typebox";
import { Value } from "typebox/value";
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { ColonyError } from "../core/errors.ts";
import { parseDuration } from "../core/duration.ts";
import { deepFreeze } from "../core/json.ts";
import { METHODS, type Method } from "../core/job-definition.ts";
import {
  DockerConfigSchema,
  KubernetesConfigSchema,
  type DockerConfig,
  type KubernetesConfig,
} from "../executors/container-options.ts";
import type { HttpTls } from "../executors/http/http-executor.ts";

const Duration = Type.String({ description: "Go-style duration, e.g. 30s, 5m, 1h30m" });
const StrMap = Type.Record(Type.String(), Type.String());

const WorkType = Type.Object(
  {
    work_type: Type.String({ pattern: "^[A-Za-z0-9._-]+$" }),
    command: Type.String({ minLength: 1 }),
    params: Type.Optional(Type.String()),
    allow_runtime_params: Type.Optional(Type.Boolean()),
    verify_signature: Type.Optional(Type.Boolean()),
    description: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

const Peer = Type.Object(
  {
    node_id: Type.String({ minLength: 1 }),
    url: Type.String({ minLength: 1 }),
    token: Type.Optional(Type.String()),
    token_file: Type.Optional(Type.String()),
    ca_file: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const ConfigFileSchema = Type.Object(
  {
    node_id: Type.Optional(Type.String({ minLength: 1 })),
    data_dir: Type.Optional(Type.String({ minLength: 1 })),
    host: Type.Optional(Type.String()),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    /** The URL processes and peers use to reach this server (default http(s)://host:port). */
    base_url: Type.Optional(Type.String()),
    /**
     * This one server's own URL, when base_url is shared (a load balancer in front of
     * servers sharing a store): other servers fetch its task output there, and the
     * processes it starts call their job hook there. Default: base_url.
     */
    advertise_url: Type.Optional(Type.String()),
    store: Type.Optional(Type.String({ description: "sqlite: path or postgres:// URL" })),
    control_socket: Type.Optional(Type.String()),
    max_parallel_tasks: Type.Optional(Type.Integer({ minimum: 1 })),
    kill_grace: Type.Optional(Duration),
    /** How long a stopping server lets running tasks finish before leaving them to recovery. */
    shutdown_grace: Type.Optional(Duration),
    body_limit: Type.Optional(Type.Integer({ minimum: 1024 })),
    auth: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          admin_token_file: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Type.String(),
          key: Type.String(),
          client_ca: Type.Optional(Type.String()),
          /** Client certificate CN -> role (reader, writer, admin, ant). */
          client_cn_roles: Type.Optional(StrMap),
        },
        { additionalProperties: false },
      ),
    ),
    jobs_api: Type.Optional(
      Type.Object(
        { default_timeout: Type.Optional(Duration), stop_grace: Type.Optional(Duration) },
        { additionalProperties: false },
      ),
    ),
    messaging: Type.Optional(
      Type.Object({ redis_url: Type.Optional(Type.String()) }, { additionalProperties: false }),
    ),
    /** The built-in ant and remote ants on /ws/ants (docs/ants.md). */
    ant: Type.Optional(
      Type.Object(
        {
          /** Tags of the built-in ant: tasks with tags run here only if it has them all. */
          tags: Type.Optional(Type.Array(Type.String())),
          /** Methods the built-in ant offers (default: every method this server can run). */
          methods: Type.Optional(Type.Array(Type.Enum([...METHODS]))),
          /** How often remote ants are pinged; one missed pong ends the connection. */
          ping_interval: Type.Optional(Duration),
          /** How long a disconnected `colony ant` keeps its tasks before they are retried. */
          reconnect_grace: Type.Optional(Duration),
          /** The pause before a request answered EXECUTING is sent again. */
          poll_delay: Type.Optional(Duration),
        },
        { additionalProperties: false },
      ),
    ),
    work_types: Type.Optional(Type.Array(WorkType)),
    peers: Type.Optional(Type.Array(Peer)),
    work_signing: Type.Optional(
      Type.Object(
        { private_key: Type.String(), token_expiration: Type.Optional(Duration) },
        { additionalProperties: false },
      ),
    ),
    work_verification: Type.Optional(
      Type.Object({ public_key: Type.String() }, { additionalProperties: false }),
    ),
    /** Work units (docs/units.md): retention, remote-work timing, the control service on TCP. */
    units: Type.Optional(
      Type.Object(
        {
          /** Finished units whose last change is older than this are released; 0 keeps them. */
          retention: Type.Optional(Duration),
          remote_poll: Type.Optional(Duration),
          remote_retry_max: Type.Optional(Duration),
          control_tcp: Type.Optional(
            Type.Object(
              {
                host: Type.Optional(Type.String()),
                port: Type.Integer({ minimum: 0, maximum: 65535 }),
                cert: Type.String(),
                key: Type.String(),
                client_ca: Type.String(),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    /** The job hook (docs/hook.md). */
    hook: Type.Optional(
      Type.Object({ max_clock_skew: Type.Optional(Duration) }, { additionalProperties: false }),
    ),
    /** The artifact store (docs/artifacts.md): default lifetime ("0s" keeps them), size limit. */
    artifacts: Type.Optional(
      Type.Object(
        {
          expire_after: Type.Optional(Duration),
          max_size: Type.Optional(Type.Integer({ minimum: 1, description: "bytes" })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Cron schedules of job types (docs/schedules.md). */
    schedules: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          /** IANA zone for cron_trigger without CRON_TZ= (default: the machine's). */
          timezone: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
    /** TLS of HTTP tasks' https:// calls (docs/executors.md#http): a CA to trust, a client certificate. */
    http: Type.Optional(
      Type.Object(
        {
          ca_file: Type.Optional(Type.String({ minLength: 1 })),
          cert_file: Type.Optional(Type.String({ minLength: 1 })),
          key_file: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Container executors (seed 000 ant config: "Docker", "Kubernetes"); container-options.ts. */
    docker: Type.Optional(DockerConfigSchema),
    kubernetes: Type.Optional(KubernetesConfigSchema),
  },
  { additionalProperties: false },
);

export type ConfigFile = Static<typeof ConfigFileSchema>;

export interface Config {
  readonly nodeId: string;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly baseUrl?: string;
  readonly advertiseUrl?: string;
  readonly storeUrl?: string;
  readonly controlSocket: string;
  readonly maxParallelTasks: number;
  readonly killGraceMs: number;
  readonly shutdownGraceMs: number;
  readonly bodyLimit: number;
  readonly auth: { readonly enabled: boolean; readonly adminTokenFile: string };
  readonly tls?: {
    readonly cert: string;
    readonly key: string;
    readonly clientCa?: string;
    readonly clientCnRoles: Readonly<Record<string, string>>;
  };
  readonly jobsApi: { readonly defaultTimeoutMs: number; readonly stopGraceMs: number };
  readonly messaging: { readonly redisUrl: string };
  readonly ant: {
    readonly tags: readonly string[];
    readonly methods?: readonly Method[];
    readonly pingIntervalMs: number;
    readonly reconnectGraceMs: number;
    readonly pollDelayMs: number;
  };
  readonly workTypes: NonNullable<ConfigFile["work_types"]>;
  readonly peers: NonNullable<ConfigFile["peers"]>;
  readonly workSigning?: { readonly privateKey: string; readonly tokenExpirationMs: number };
  readonly workVerification?: { readonly publicKey: string };
  readonly units: {
    readonly retentionMs: number;
    readonly remotePollMs: number;
    readonly remoteRetryMaxMs: number;
    readonly controlTcp?: {
      readonly host: string;
      readonly port: number;
      readonly cert: string;
      readonly key: string;
      readonly clientCa: string;
    };
  };
  readonly hook: { readonly maxClockSkewMs: number };
  readonly artifacts: { readonly expiresAfterMs: number; readonly maxBytes: number };
  readonly schedules: { readonly enabled: boolean; readonly timezone?: string };
  /** PEM files (absolute paths) for HTTP tasks' TLS; readHttpTls reads them. */
  readonly http: {
    readonly caFile?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
  };
  readonly docker: Readonly<DockerConfig>;
  readonly kubernetes: Readonly<KubernetesConfig>;
  /** Where the file was read from, if any. */
  readonly source?: string;
}

/** Flags given on the command line; they win over the file and the environment. */
export interface ConfigOverrides {
  dataDir?: string;
  port?: number;
  host?: string;
  storeUrl?: string;
  insecureNoAuth?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  tlsClientCa?: string;
}

export class ConfigError extends ColonyError {
  constructor(message: string) {
    super("COLONY_CONFIG_INVALID", message, { status: 400 });
  }
}

/** An http(s) URL setting, without a trailing slash. */
function httpUrl(key: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const url = URL.parse(text);
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new ConfigError(
      `${key}: '${text}' is not an http(s) URL; write e.g. https://colony.example.com`,
    );
  }
  return text.replace(/\/+$/, "");
}

function duration(key: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new ConfigError(`${key}: '${text}' is not a duration; write e.g. 30s, 5m or 1h30m`);
  return ms;
}

function keyOf(instancePath: string): string {
  return instancePath
    .replace(/^\//, "")
    .replace(/\/(\d+)(?=\/|$)/g, "[$1]")
    .replace(/\//g, ".");
}

/**
 * Validates a parsed config document; throws ConfigError naming the first bad key.
 * `locate` (readConfigFile's) turns a key's path into `file:line:column` for the message.
 */
export function validateConfigFile(
  doc: unknown,
  source = "config",
  locate?: (path: string[]) => string | undefined,
): ConfigFile {
  if (doc === null || doc === undefined) return {};
  for (const error of Value.Errors(ConfigFileSchema, doc)) {
    const e = error as {
      keyword: string;
      instancePath: string;
      message: string;
      params: Record<string, unknown>;
    };
    const key = keyOf(e.instancePath);
    const segments = e.instancePath.split("/").slice(1);
    if (e.keyword === "additionalProperties") {
      const extra = (e.params.additionalProperties as string[] | undefined)?.[0];
      const known = key ? [] : Object.keys(ConfigFileSchema.properties);
      const at = locate?.([...segments, extra ?? ""]) ?? source;
      throw new ConfigError(
        `${at}: unknown key '${key ? `${key}.` : ""}${extra}'${known.length ? `; known keys: ${known.join(", ")}` : ""}`,
      );
    }
    if (e.keyword === "boolean") continue; // reported as additionalProperties
    const at = locate?.(segments) ?? source;
    throw new ConfigError(`${at}: ${key || "(top level)"} ${e.message}`);
  }
  return doc as ConfigFile;
}

export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const [line, col] = first.linePos?.[0] ? [first.linePos[0].line, first.linePos[0].col] : [0, 0];
    throw new ConfigError(`${path}:${line}:${col}: ${first.message.split("\n")[0]}`);
  }
  // The key's own line where the path names one (the value's for an array item).
  const locate = (segments: string[]): string | undefined => {
    const parent = doc.getIn(segments.slice(0, -1), true);
    const last = segments.at(-1);
    let range: readonly number[] | null | undefined;
    if (isMap(parent)) {
      const pair = parent.items.find((p) => isScalar(p.key) && String(p.key.value) === last);
      range = (pair?.key as { range?: number[] } | undefined)?.range;
    } else if (isSeq(parent)) {
      range = (parent.items[Number(last)] as { range?: number[] } | undefined)?.range;
    }
    if (!range) return undefined;
    const { line, col } = lines.linePos(range[0]!);
    return `${path}:${line}:${col}`;
  };
  return validateConfigFile(doc.toJS(), path, locate);
}

/**
 * Builds the frozen Config from the file (if any), the environment and flags.
 * Environment: COLONY_DATA_DIR, COLONY_PORT, COLONY_HOST, COLONY_STORE_URL,
 * COLONY_REDIS_URL, COLONY_BASE_URL, COLONY_ADVERTISE_URL, COLONY_NODE_ID.
 */
export function loadConfig(options: {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: ConfigOverrides;
  cwd?: string;
}): Config {
  const env = options.env ?? {};
  const cwd = options.cwd ?? process.cwd();
  const file = options.file ? readConfigFile(resolve(cwd, options.file)) : {};
  const base = options.file ? dirname(resolve(cwd, options.file)) : cwd;
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const o = options.overrides ?? {};
  const dataDir = o.dataDir
    ? resolve(cwd, o.dataDir)
    : env.COLONY_DATA_DIR
      ? resolve(cwd, env.COLONY_DATA_DIR)
      : rel(file.data_dir ?? ".colony");
  const portText = env.COLONY_PORT || undefined;
  if (portText !== undefined && !/^\d+$/.test(portText)) {
    throw new ConfigError(`COLONY_PORT: '${portText}' is not a port number`);
  }
  const port = o.port ?? (portText !== undefined ? Number(portText) : (file.port ?? 7777));
  const tlsCert = o.tlsCert ?? file.tls?.cert;
  const tlsKey = o.tlsKey ?? file.tls?.key;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(
      "tls: set both a certificate (--tls-cert / tls.cert) and a key (--tls-key / tls.key)",
    );
  }
  const clientCa = o.tlsClientCa ?? file.tls?.client_ca;
  if (clientCa && !tlsCert)
    throw new ConfigError(
      "tls.client_ca needs tls.cert and tls.key: client certificates only work over TLS",
    );
  const httpTls = file.http ?? {};
  if ((httpTls.cert_file === undefined) !== (httpTls.key_file === undefined)) {
    throw new ConfigError(
      "http: set both cert_file and key_file (the client certificate HTTP tasks present, and its key), or neither",
    );
  }
  const config: Config = {
    nodeId: (env.COLONY_NODE_ID || undefined) ?? file.node_id ?? "colony",
    dataDir,
    host: o.host ?? (env.COLONY_HOST || undefined) ?? file.host ?? "127.0.0.1",
    port,
    baseUrl: httpUrl(
      !env.COLONY_BASE_URL ? "base_url" : "COLONY_BASE_URL",
      (env.COLONY_BASE_URL || undefined) ?? file.base_url,
    ),
    advertiseUrl: httpUrl(
      !env.COLONY_ADVERTISE_URL ? "advertise_url" : "COLONY_ADVERTISE_URL",
      (env.COLONY_ADVERTISE_URL || undefined) ?? file.advertise_url,
    ),
    storeUrl: o.storeUrl ?? (env.COLONY_STORE_URL || undefined) ?? file.store,
    controlSocket: file.control_socket
      ? rel(file.control_socket)
      : resolve(dataDir, "control.sock"),
    maxParallelTasks: file.max_parallel_tasks ?? 16,
    killGraceMs: duration("kill_grace", file.kill_grace, 10_000),
    shutdownGraceMs: duration("shutdown_grace", file.shutdown_grace, 10_000),
    bodyLimit: file.body_limit ?? 10 * 1024 * 1024,
    auth: {
      enabled: o.insecureNoAuth ? false : (file.auth?.enabled ?? true),
      adminTokenFile: file.auth?.admin_token_file
        ? rel(file.auth.admin_token_file)
        : resolve(dataDir, "admin.token"),
    },
    tls:
      tlsCert && tlsKey
        ? {
            // Paths from flags are relative to the working directory, from the file to the file.
            cert: o.tlsCert ? resolve(cwd, o.tlsCert) : rel(tlsCert),
            key: o.tlsKey ? resolve(cwd, o.tlsKey) : rel(tlsKey),
            clientCa: o.tlsClientCa
              ? resolve(cwd, o.tlsClientCa)
              : clientCa
                ? rel(clientCa)
                : undefined,
            clientCnRoles: file.tls?.client_cn_roles ?? {},
          }
        : undefined,
    jobsApi: {
      defaultTimeoutMs: duration(
        "jobs_api.default_timeout",
        file.jobs_api?.default_timeout,
        30_000,
      ),
      stopGraceMs: duration("jobs_api.stop_grace", file.jobs_api?.stop_grace, 5_000),
    },
    messaging: {
      redisUrl:
        (env.COLONY_REDIS_URL || undefined) ??
        file.messaging?.redis_url ??
        "redis://127.0.0.1:6379",
    },
    ant: {
      tags: file.ant?.tags ?? [],
      ...(file.ant?.methods ? { methods: file.ant.methods } : {}),
      pingIntervalMs: duration("ant.ping_interval", file.ant?.ping_interval, 5000),
      reconnectGraceMs: duration("ant.reconnect_grace", file.ant?.reconnect_grace, 10_000),
      pollDelayMs: duration("ant.poll_delay", file.ant?.poll_delay, 1000),
    },
    workTypes: file.work_types ?? [],
    peers: (file.peers ?? []).map((p) => ({
      ...p,
      ...(p.token_file === undefined ? {} : { token_file: rel(p.token_file) }),
      ...(p.ca_file === undefined ? {} : { ca_file: rel(p.ca_file) }),
    })),
    workSigning: file.work_signing
      ? {
          privateKey: rel(file.work_signing.private_key),
          tokenExpirationMs: duration(
            "work_signing.token_expiration",
            file.work_signing.token_expiration,
            30 * 60_000,
          ),
        }
      : undefined,
    workVerification: file.work_verification
      ? { publicKey: rel(file.work_verification.public_key) }
      : undefined,
    hook: { maxClockSkewMs: duration("hook.max_clock_skew", file.hook?.max_clock_skew, 300_000) },
    artifacts: {
      expiresAfterMs: duration(
        "artifacts.expire_after",
        file.artifacts?.expire_after,
        720 * 3_600_000,
      ),
      maxBytes: file.artifacts?.max_size ?? 1024 ** 3,
    },
    schedules: {
      enabled: file.schedules?.enabled ?? true,
      ...(file.schedules?.timezone
        ? { timezone: checkTimezone("schedules.timezone", file.schedules.timezone) }
        : {}),
    },
    units: {
      retentionMs: duration("units.retention", file.units?.retention, 7 * 86_400_000),
      remotePollMs: duration("units.remote_poll", file.units?.remote_poll, 1000),
      remoteRetryMaxMs: duration("units.remote_retry_max", file.units?.remote_retry_max, 60_000),
      controlTcp: file.units?.control_tcp
        ? {
            host: file.units.control_tcp.host ?? "127.0.0.1",
            port: file.units.control_tcp.port,
            cert: rel(file.units.control_tcp.cert),
            key: rel(file.units.control_tcp.key),
            clientCa: rel(file.units.control_tcp.client_ca),
          }
        : undefined,
    },
    // DOCKER_HOST is the Docker client's own variable; the file wins over it.
    docker: {
      ...file.docker,
      ...(file.docker?.host === undefined && env.DOCKER_HOST ? { host: env.DOCKER_HOST } : {}),
      // Relative to the config file, as tls.cert is.
      ...(file.docker?.ca_file === undefined ? {} : { ca_file: rel(file.docker.ca_file) }),
      ...(file.docker?.cert_file === undefined ? {} : { cert_file: rel(file.docker.cert_file) }),
      ...(file.docker?.key_file === undefined ? {} : { key_file: rel(file.docker.key_file) }),
    },
    http: {
      ...(httpTls.ca_file === undefined ? {} : { caFile: rel(httpTls.ca_file) }),
      ...(httpTls.cert_file === undefined ? {} : { certFile: rel(httpTls.cert_file) }),
      ...(httpTls.key_file === undefined ? {} : { keyFile: rel(httpTls.key_file) }),
    },
    kubernetes: file.kubernetes ?? {},
    source: options.file,
  };
  return deepFreeze(config);
}

/**
 * The PEM texts of `http:` for the HTTP executor, read now so that a server or an ant
 * refuses to start with files it cannot use, rather than failing every https task: each
 * file readable, the key the certificate's, all of them PEM Node's TLS accepts.
 */
export function readHttpTls(http: Config["http"]): HttpTls | undefined {
  if (!http.caFile && !http.certFile) return undefined;
  const read = (key: string, path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      throw new ConfigError(
        `http.${key}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; fix the path or the file's permissions`,
      );
    }
  };
  const tls: HttpTls = {
    ...(http.caFile ? { ca: read("ca_file", http.caFile) } : {}),
    ...(http.certFile ? { cert: read("cert_file", http.certFile) } : {}),
    ...(http.keyFile ? { key: read("key_file", http.keyFile) } : {}),
  };
  // Node takes a CA text without a certificate in it silently (and then trusts nothing more).
  if (tls.ca !== undefined && !tls.ca.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(
      `http.ca_file: ${http.caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA's certificate in PEM`,
    );
  }
  const { createSecureContext } = process.getBuiltinModule("node:tls");
  try {
    createSecureContext(tls);
  } catch (error) {
    const files = [http.caFile, http.certFile, http.keyFile].filter(Boolean).join(", ");
    throw new ConfigError(
      `http: the TLS files cannot be used (${files}): ${(error as Error).message}; give PEM files, the key being the certificate's`,
    );
  }
  return tls;
}

function checkTimezone(key: string, zone: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch {
    throw new ConfigError(
      `${key}: '${zone}' is not a time zone; write an IANA name, e.g. Europe/Paris or UTC`,
    );
  }
  return zone;
}

/** What a colony.yaml gives the executors of a process that is not a server. */
export interface ExecutorSettings {
  /** `docker:` and `kubernetes:` (DOCKER_HOST and in-cluster settings without the keys). */
  readonly containers: Pick<Config, "docker" | "kubernetes">;
  /** `http:`, read and checked (readHttpTls); undefined when it names no file. */
  readonly httpTls?: HttpTls;
  /** `messaging.redis_url` (or COLONY_REDIS_URL), for MESSAGING tasks. */
  readonly redisUrl: string;
}

/**
 * The executor settings of `file` (and the environment, as loadConfig reads it) for
 * `colony ant --config` and `colony run --config`: the rest of the file (port, auth,
 * data_dir...) is the server's and is not used. Throws ConfigError naming the key.
 */
export function readExecutorSettings(
  file: string | undefined,
  env: NodeJS.ProcessEnv,
): ExecutorSettings {
  const config = loadConfig({ ...(file ? { file } : {}), env });
  const httpTls = readHttpTls(config.http);
  return {
    containers: { docker: config.docker, kubernetes: config.kubernetes },
    redisUrl: config.messaging.redisUrl,
    ...(httpTls ? { httpTls } : {}),
  };
}
