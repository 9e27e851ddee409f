/**
 * The container settings of seed 000 ("Docker", "Kubernetes") as schemas: the ant-level
 * config (`docker:` and `kubernetes:` in colony.yaml) and the task fields a DOCKER or
 * KUBERNETES task carries in `executorOptions` under their YAML keys (container,
 * services, privileged, affinity, node_selector...). One schema gives both the runtime
 * validation (every refusal names the key) and the TypeScript type.
 */
import { Type, type Static, type TSchema } from "typebox";
import { Value } from "typebox/value";
import { ExecutorError } from "../core/errors.ts";
import type { TaskDefinition } from "../core/job-definition.ts";

const Str = Type.String();
const StrMap = Type.Record(Type.String(), Type.String());
const StrList = Type.Array(Type.String());
/** A YAML scalar quantity: `cpu_limit: 1` and `cpu_limit: "500m"` are both fine. */
const Quantity = Type.Union([Type.String(), Type.Number()]);
const strict = { additionalProperties: false } as const;

export const PULL_POLICIES = ["never", "always", "if-not-present"] as const;
export type PullPolicy = (typeof PULL_POLICIES)[number];
const PullPolicySchema = Type.Union([
  Type.Literal("never"),
  Type.Literal("always"),
  Type.Literal("if-not-present"),
]);

/** `registry:` of both ant configs: the server, its credentials and the pull policy. */
export const RegistryConfigSchema = Type.Object(
  {
    registry: Type.Optional(Str),
    username: Type.Optional(Str),
    password: Type.Optional(Str),
    pull_policy: Type.Optional(PullPolicySchema),
  },
  strict,
);

// ---- volumes (seed 000: host_path, pvc, config_map, secret, empty_dir, projected) ---------

const mountFields = {
  name: Str,
  mount_path: Str,
  sub_path: Type.Optional(Str),
  read_only: Type.Optional(Type.Boolean()),
};

const HostPathVolume = Type.Object(
  { ...mountFields, host_path: Type.Optional(Str), type: Type.Optional(Str) },
  strict,
);
const PvcVolume = Type.Object({ ...mountFields, claim_name: Type.Optional(Str) }, strict);
/** `items` maps a key of the config map or secret to its relative path in the volume. */
const ConfigMapVolume = Type.Object(
  {
    ...mountFields,
    config_map_name: Type.Optional(Str),
    items: Type.Optional(StrMap),
    default_mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o777 })),
    optional: Type.Optional(Type.Boolean()),
  },
  strict,
);
const SecretVolume = Type.Object(
  {
    ...mountFields,
    secret_name: Type.Optional(Str),
    items: Type.Optional(StrMap),
    default_mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o777 })),
    optional: Type.Optional(Type.Boolean()),
  },
  strict,
);
const EmptyDirVolume = Type.Object(
  { ...mountFields, medium: Type.Optional(Str), size_limit: Type.Optional(Quantity) },
  strict,
);
const TokenProjection = Type.Object(
  {
    path: Str,
    expiration_seconds: Type.Optional(Type.Integer({ minimum: 1 })),
    audience: Type.Optional(Str),
  },
  strict,
);
const ObjectProjection = Type.Object(
  { name: Str, items: Type.Optional(StrMap), optional: Type.Optional(Type.Boolean()) },
  strict,
);
/**
 * One projected source. The seed writes `- service_account_token:` with `path`,
 * `expiration_seconds` and `audience` as its siblings (YAML makes the key null and the
 * fields part of the list item); the nested form is accepted too.
 */
const ProjectionSource = Type.Object(
  {
    service_account_token: Type.Optional(Type.Union([TokenProjection, Type.Null()])),
    path: Type.Optional(Str),
    expiration_seconds: Type.Optional(Type.Integer({ minimum: 1 })),
    audience: Type.Optional(Str),
    secret: Type.Optional(ObjectProjection),
    config_map: Type.Optional(ObjectProjection),
  },
  strict,
);
const ProjectedVolume = Type.Object(
  {
    ...mountFields,
    sources: Type.Array(ProjectionSource, { minItems: 1 }),
    default_mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o777 })),
  },
  strict,
);

export const VolumesSchema = Type.Object(
  {
    host_path: Type.Optional(Type.Array(HostPathVolume)),
    pvc: Type.Optional(Type.Array(PvcVolume)),
    config_map: Type.Optional(Type.Array(ConfigMapVolume)),
    secret: Type.Optional(Type.Array(SecretVolume)),
    empty_dir: Type.Optional(Type.Array(EmptyDirVolume)),
    projected: Type.Optional(Type.Array(ProjectedVolume)),
  },
  strict,
);
export type Volumes = Static<typeof VolumesSchema>;
export type ProjectionSourceOptions = Static<typeof ProjectionSource>;

// ---- ant-level config --------------------------------------------------------------------

export const DockerConfigSchema = Type.Object(
  {
    registry: Type.Optional(RegistryConfigSchema),
    /** unix:///var/run/docker.sock (default), tcp://host:2375, http(s)://host:port, or a socket path. */
    host: Type.Optional(Str),
    /**
     * TLS to a TCP engine (docker-api.ts `dockerTls`): verify the engine's certificate
     * (default true once TLS is on); the CA that signed it; colony's client certificate
     * and key. Without these, DOCKER_TLS_VERIFY / DOCKER_TLS / DOCKER_CERT_PATH as the
     * Docker CLI reads them.
     */
    tls_verify: Type.Optional(Type.Boolean()),
    ca_file: Type.Optional(Str),
    cert_file: Type.Optional(Str),
    key_file: Type.Optional(Str),
    /** Image of the `-helper` container that moves artifacts (used once artifacts exist). */
    helper_image: Type.Optional(Str),
    /** Environment of every container (a task's environment wins). */
    environment: Type.Optional(StrMap),
    /** Overrides registry.pull_policy (the seed lists it at both places). */
    pull_policy: Type.Optional(PullPolicySchema),
    /** When false, a task asking for `privileged: true` is refused (default true). */
    allow_privileged: Type.Optional(Type.Boolean()),
  },
  strict,
);
export type DockerConfig = Static<typeof DockerConfigSchema>;

export const DnsConfigSchema = Type.Object(
  {
    nameservers: Type.Optional(StrList),
    searches: Type.Optional(StrList),
    /** `ndots:2` strings or `{name, value}` mappings. */
    options: Type.Optional(
      Type.Array(
        Type.Union([
          Str,
          Type.Object(
            { name: Str, value: Type.Optional(Type.Union([Str, Type.Number()])) },
            strict,
          ),
        ]),
      ),
    ),
  },
  strict,
);

const Int64 = Type.Integer();
export const PodSecurityContextSchema = Type.Object(
  {
    fs_group: Type.Optional(Int64),
    run_as_group: Type.Optional(Int64),
    run_as_non_root: Type.Optional(Type.Boolean()),
    run_as_user: Type.Optional(Int64),
    supplemental_groups: Type.Optional(Type.Array(Int64)),
    fs_group_change_policy: Type.Optional(
      Type.Union([Type.Literal("OnRootMismatch"), Type.Literal("Always")]),
    ),
  },
  strict,
);

export const KubernetesConfigSchema = Type.Object(
  {
    registry: Type.Optional(RegistryConfigSchema),
    /** API server URL; without it colony uses KUBECONFIG / ~/.kube/config / in-cluster. */
    host: Type.Optional(Str),
    bearer_token: Type.Optional(Str),
    cert_file: Type.Optional(Str),
    key_file: Type.Optional(Str),
    ca_file: Type.Optional(Str),
    namespace: Type.Optional(Str),
    helper_image: Type.Optional(Str),
    service_account: Type.Optional(Str),
    image_pull_secrets: Type.Optional(StrList),
    dns_policy: Type.Optional(
      Type.Union([
        Type.Literal("none"),
        Type.Literal("default"),
        Type.Literal("cluster-first"),
        Type.Literal("cluster-first-with-host-net"),
      ]),
    ),
    dns_config: Type.Optional(DnsConfigSchema),
    /** Volumes mounted into every container of every pod. */
    volumes: Type.Optional(VolumesSchema),
    pod_security_context: Type.Optional(PodSecurityContextSchema),
    host_aliases: Type.Optional(Type.Array(Type.Object({ ip: Str, hostnames: StrList }, strict))),
    cap_add: Type.Optional(StrList),
    cap_drop: Type.Optional(StrList),
    environment: Type.Optional(StrMap),
    pull_policy: Type.Optional(PullPolicySchema),
    allow_privileged: Type.Optional(Type.Boolean()),
  },
  strict,
);
export type KubernetesConfig = Static<typeof KubernetesConfigSchema>;
export type DnsPolicy = NonNullable<KubernetesConfig["dns_policy"]>;

// ---- task fields -----------------------------------------------------------------------

const resourceFields = {
  cpu_limit: Type.Optional(Quantity),
  cpu_request: Type.Optional(Quantity),
  memory_limit: Type.Optional(Quantity),
  memory_request: Type.Optional(Quantity),
};

const Port = Type.Object(
  {
    number: Type.Integer({ minimum: 1, maximum: 65535 }),
    protocol: Type.Optional(Str),
    name: Type.Optional(Str),
  },
  strict,
);
/** formicary's image definition: an image's name, DNS alias, command, entrypoint, ports. */
const ImageDefinition = Type.Object(
  {
    name: Type.Optional(Str),
    alias: Type.Optional(Str),
    command: Type.Optional(StrList),
    entrypoint: Type.Optional(StrList),
    ports: Type.Optional(Type.Array(Port)),
  },
  strict,
);

export const ContainerSchema = Type.Object(
  {
    image: Type.Optional(Str),
    image_definition: Type.Optional(ImageDefinition),
    /** The TaskRequest JSON of the seed spells it imageDefinition. */
    imageDefinition: Type.Optional(ImageDefinition),
    volumes: Type.Optional(VolumesSchema),
    volume_driver: Type.Optional(Str),
    devices: Type.Optional(StrList),
    bind_dir: Type.Optional(Str),
    ...resourceFields,
  },
  strict,
);
export type ContainerOptions = Static<typeof ContainerSchema>;

export const ServiceSchema = Type.Object(
  {
    name: Str,
    image: Str,
    command: Type.Optional(StrList),
    entrypoint: Type.Optional(StrList),
    environment: Type.Optional(StrMap),
    working_directory: Type.Optional(Str),
    volumes: Type.Optional(VolumesSchema),
    ports: Type.Optional(Type.Array(Port)),
    ...resourceFields,
  },
  strict,
);
export type ServiceOptions = Static<typeof ServiceSchema>;

const NodeSelectorRequirement = Type.Object(
  {
    key: Str,
    operator: Type.Union([
      Type.Literal("In"),
      Type.Literal("NotIn"),
      Type.Literal("Exists"),
      Type.Literal("DoesNotExist"),
      Type.Literal("Gt"),
      Type.Literal("Lt"),
    ]),
    values: Type.Optional(StrList),
  },
  strict,
);
const NodeSelectorTerm = Type.Object(
  {
    match_expressions: Type.Optional(Type.Array(NodeSelectorRequirement)),
    match_fields: Type.Optional(Type.Array(NodeSelectorRequirement)),
  },
  strict,
);
const NodeAffinityFields = {
  required_during_scheduling_ignored_during_execution: Type.Optional(
    Type.Object({ node_selector_terms: Type.Array(NodeSelectorTerm) }, strict),
  ),
  preferred_during_scheduling_ignored_during_execution: Type.Optional(
    Type.Array(
      Type.Object(
        { weight: Type.Integer({ minimum: 1, maximum: 100 }), preference: NodeSelectorTerm },
        strict,
      ),
    ),
  ),
};
/** The seed's affinity is node affinity written directly; `node_affinity:` may wrap it. */
export const AffinitySchema = Type.Object(
  { ...NodeAffinityFields, node_affinity: Type.Optional(Type.Object(NodeAffinityFields, strict)) },
  strict,
);
export type AffinityOptions = Static<typeof AffinitySchema>;
export type NodeSelectorTermOptions = Static<typeof NodeSelectorTerm>;

/** Every container-related key a task may carry (definition-fields.ts keeps them verbatim). */
export const TaskContainerSchema = Type.Object(
  {
    name: Type.Optional(Str),
    working_directory: Type.Optional(Str),
    container: Type.Optional(ContainerSchema),
    services: Type.Optional(Type.Array(ServiceSchema)),
    privileged: Type.Optional(Type.Boolean()),
    network_mode: Type.Optional(Str),
    host_network: Type.Optional(Type.Boolean()),
    affinity: Type.Optional(AffinitySchema),
    node_selector: Type.Optional(StrMap),
    /** key (or key=value) -> effect (NoSchedule, PreferNoSchedule, NoExecute). */
    node_tolerations: Type.Optional(StrMap),
    pod_labels: Type.Optional(StrMap),
    pod_annotations: Type.Optional(StrMap),
    ...resourceFields,
    helper: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    messaging_provider: Type.Optional(Str),
  },
  strict,
);
export type TaskContainerOptions = Static<typeof TaskContainerSchema>;

function keyOf(instancePath: string): string {
  return instancePath
    .replace(/^\//, "")
    .replace(/\/(\d+)(?=\/|$)/g, "[$1]")
    .replace(/\//g, ".");
}

/** The first schema error as one line naming the key, or undefined when `value` is valid. */
export function firstSchemaError(schema: TSchema, value: unknown): string | undefined {
  for (const error of Value.Errors(schema, value)) {
    const e = error as {
      keyword: string;
      instancePath: string;
      message: string;
      params: Record<string, unknown>;
    };
    const key = keyOf(e.instancePath);
    if (e.keyword === "additionalProperties") {
      const extra = (e.params.additionalProperties as string[] | undefined)?.[0];
      return `unknown key '${key ? `${key}.` : ""}${extra}'`;
    }
    if (e.keyword === "required") {
      const missing = (e.params.requiredProperties as string[] | undefined)?.[0];
      return `${key ? `${key}.` : ""}${missing ?? "a key"} is required`;
    }
    if (e.keyword === "boolean") continue;
    return `${key || "(top level)"} ${e.message}`;
  }
  return undefined;
}

/** The task's container options, validated; the error names the task and the key. */
export function taskContainerOptions(task: TaskDefinition): TaskContainerOptions {
  // YAML `key:` with no value arrives as null: treat it as absent.
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(task.executorOptions)) if (v !== null) raw[k] = v;
  const problem = firstSchemaError(TaskContainerSchema, raw);
  if (problem) {
    throw new ExecutorError(
      "COLONY_INVALID_CONTAINER_OPTIONS",
      `${task.method} task '${task.taskType}': ${problem}`,
      { retryable: false },
    );
  }
  return raw as TaskContainerOptions;
}

/** The pull policy in force: the top-level key wins over registry.pull_policy. */
export function pullPolicyOf(config: {
  pull_policy?: PullPolicy;
  registry?: { pull_policy?: PullPolicy };
}): PullPolicy {
  return config.pull_policy ?? config.registry?.pull_policy ?? "if-not-present";
}

// ---- quantities ------------------------------------------------------------------------

const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
const DECIMAL: Record<string, number> = { k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
/** Docker's own unit letters (`docker run --memory 512m` means MiB). */
const DOCKER_UNITS: Record<string, number> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 };

/** CPUs as a number (`1`, `"0.5"`, `"500m"`), or undefined when the text is not one. */
export function parseCpu(value: string | number): number | undefined {
  if (typeof value === "number") return value > 0 ? value : undefined;
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(value.trim());
  if (!m) return undefined;
  const n = Number(m[1]) / (m[2] ? 1000 : 1);
  return n > 0 ? n : undefined;
}

/** Bytes from `1Gi`, `512Mi`, `1G`, `1048576` or Docker's `512m`/`1g`. */
export function parseMemory(value: string | number): number | undefined {
  if (typeof value === "number") return value > 0 ? Math.round(value) : undefined;
  const m = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(value.trim());
  if (!m) return undefined;
  const unit = m[2] ?? "";
  const factor = unit === "" ? 1 : (BINARY[unit] ?? DECIMAL[unit] ?? DOCKER_UNITS[unit]);
  if (factor === undefined) return undefined;
  const n = Math.round(Number(m[1]) * factor);
  return n > 0 ? n : undefined;
}

// ---- secrets ---------------------------------------------------------------------------

export const MASK = "********";
const SECRET_KEYS = new Set(["password", "bearer_token", "token", "auth", "identitytoken"]);

/**
 * A copy of a config (or any JSON) with registry passwords and bearer tokens replaced by
 * ********: what colony shows wherever it describes its container settings.
 */
export function redactSecrets<T>(value: T): T {
  if (Array.isArray(value)) return value.map((v) => redactSecrets(v)) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] =
        SECRET_KEYS.has(k.toLowerCase()) && v !== undefined && v !== "" ? MASK : redactSecrets(v);
    }
    return out as T;
  }
  return value;
}

/** Replaces every occurrence of the given secret strings in `text` by ********. */
export function maskIn(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 3) out = out.split(s).join(MASK);
  return out;
}

/** What the DOCKER and KUBERNETES executors share in their options. */
export interface ContainerExecutorOptions {
  /** Stop's grace between SIGTERM and SIGKILL (default 10 s). */
  killGraceMs?: number;
  /** Value of the colony.owner label: this colony's node id (default "colony"). */
  owner?: string;
  /** How long a finished execution stays known (logStream, EXECUTION_EXISTS); default 10 min (of those whose result was taken, only the newest 100). */
  retainFinishedMs?: number;
  /**
   * Whether an execution is still wanted (the store says it is unfinished). The reaper
   * stops running containers (pods) of executions this answers false for; without it,
   * only those that ended while nobody watched are collected.
   */
  isExecutionLive?: (executionId: string) => Promise<boolean>;
  /** Period of the orphan reaper (default 60 s; 0 turns the timer off). */
  reapIntervalMs?: number;
  /** An ended container (pod) nobody collected is reaped once ended this long (default 30 s). */
  reapExitedAfterMs?: number;
  /** Where warnings and reaper notes go (never secrets). */
  log?: (message: string) => void;
}
