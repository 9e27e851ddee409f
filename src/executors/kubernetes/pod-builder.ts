/**
 * Builds the pod of a KUBERNETES task (seed 000 "Kubernetes") from the ant's
 * `kubernetes:` config and the task's fields, as the V1Pod JSON the API server takes:
 *
 * - ant config: namespace, service_account, image_pull_secrets (plus a per-execution
 *   secret for registry credentials), dns_policy, dns_config, pod_security_context,
 *   host_aliases, cap_add / cap_drop (every container; NET_RAW is dropped unless added),
 *   volumes (mounted in every container), environment, pull_policy.
 * - task: name (pod and main container name), environment, working_directory,
 *   container.image / image_definition, container volumes (host_path, pvc, config_map,
 *   secret, empty_dir, projected; items; read_only), volume_driver, devices, bind_dir,
 *   cpu/memory limits and requests, services as `svc-` containers with their own
 *   volumes and resources, affinity (required and preferred; match_expressions and
 *   match_fields), node_selector, node_tolerations, pod_labels, pod_annotations,
 *   privileged, host_network, network_mode.
 *
 * Pure (no I/O). Things the API server would refuse although the schema allows them
 * (a duplicate mount path, dns_policy none without dns_config) come back as warnings.
 */
import { createHash } from "node:crypto";
import type {
  V1Affinity,
  V1Container,
  V1KeyToPath,
  V1NodeSelectorTerm,
  V1Pod,
  V1Secret,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
  V1VolumeProjection,
} from "@kubernetes/client-node";
import { ExecutorError } from "../../core/errors.ts";
import type { ExecutionRequest } from "../../core/executor.ts";
import {
  pullPolicyOf,
  type AffinityOptions,
  type ContainerOptions,
  type KubernetesConfig,
  type NodeSelectorTermOptions,
  type ProjectionSourceOptions,
  type ServiceOptions,
  type TaskContainerOptions,
  type Volumes,
} from "../container-options.ts";
import { composeShellScript } from "../shell/shell-script.ts";

export const LABELS = {
  managed: "colony.managed",
  owner: "colony.owner",
  unitId: "colony.unit-id",
  taskType: "colony.task-type",
  jobRequestId: "colony.job-request-id",
} as const;
export const ANNOTATIONS = {
  unitDir: "colony.unit-dir",
  networkMode: "colony.network-mode",
  volumeDriver: "colony.volume-driver",
} as const;

/** One argument of exec is limited to 128 KiB on Linux. */
const MAX_SCRIPT = 120 * 1024;
const QUANTITY = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkKMGTPE]i?|)$/;

export interface PodInput {
  request: ExecutionRequest;
  options: TaskContainerOptions;
  config: KubernetesConfig;
  /** Value of the colony.owner label (the node id). */
  owner: string;
  /** Name of the registry-credentials secret colony creates, when it has credentials. */
  registrySecret?: string;
  /** terminationGracePeriodSeconds (the kill grace). */
  graceSeconds?: number;
}

export interface BuiltPod {
  pod: V1Pod;
  name: string;
  namespace: string;
  /** The container whose exit is the task's exit. */
  mainContainer: string;
  warnings: string[];
}

function fail(request: ExecutionRequest, message: string): never {
  throw new ExecutorError(
    "COLONY_INVALID_CONTAINER_OPTIONS",
    `KUBERNETES task '${request.task.taskType}': ${message}`,
    { retryable: false },
  );
}

/** A DNS-1123 label: lowercase alphanumerics and '-', at most `max` characters. */
export function dnsLabel(text: string, max = 63): string {
  const cleaned = text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+/, "")
    .slice(0, max)
    .replace(/-+$/, "");
  return cleaned || "x";
}

/** A label value: [A-Za-z0-9._-], alphanumeric at both ends, at most 63 characters. */
export function labelValue(text: string): string {
  return text
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}

/**
 * The pod's name: the task's name and the unit id (pod names are lowercase; unit ids
 * are not, so a short hash of the exact id keeps two ids that differ by case apart).
 */
export function podName(base: string, executionId: string): string {
  const hash = createHash("sha1").update(executionId).digest("hex").slice(0, 5);
  const suffix = `${dnsLabel(executionId, 20)}-${hash}`;
  return `${dnsLabel(base, 63 - suffix.length - 1)}-${suffix}`;
}

/** The pod name of a request: the task's `name` (or job-task) and the unit id. */
export function podNameFor(request: ExecutionRequest, options: TaskContainerOptions): string {
  const base = options.name ?? `${request.jobType ?? "job"}-${request.task.taskType}`;
  return podName(base, request.executionId);
}

export const PULL_POLICY = {
  never: "Never",
  always: "Always",
  "if-not-present": "IfNotPresent",
} as const;

const DNS_POLICY = {
  none: "None",
  default: "Default",
  "cluster-first": "ClusterFirst",
  "cluster-first-with-host-net": "ClusterFirstWithHostNet",
} as const;

function quantity(request: ExecutionRequest, key: string, v: string | number | undefined) {
  if (v === undefined) return undefined;
  const text = typeof v === "number" ? String(v) : v.trim();
  if (!QUANTITY.test(text)) {
    fail(request, `${key} '${v}' is not a Kubernetes quantity (e.g. 500m, 1, 512Mi, 1Gi)`);
  }
  return text;
}

type Resources = Pick<
  ContainerOptions,
  "cpu_limit" | "cpu_request" | "memory_limit" | "memory_request"
>;

/** Limits and requests from each [key prefix, fields] layer; later layers win. */
function resources(request: ExecutionRequest, ...layers: [string, Resources][]) {
  const limits: Record<string, string> = {};
  const requests: Record<string, string> = {};
  for (const [where, r] of layers) {
    const put = (target: Record<string, string>, res: string, key: keyof Resources) => {
      const q = quantity(request, `${where}${key}`, r[key]);
      if (q !== undefined) target[res] = q;
    };
    put(limits, "cpu", "cpu_limit");
    put(limits, "memory", "memory_limit");
    put(requests, "cpu", "cpu_request");
    put(requests, "memory", "memory_request");
  }
  const out: { limits?: Record<string, string>; requests?: Record<string, string> } = {};
  if (Object.keys(limits).length) out.limits = limits;
  if (Object.keys(requests).length) out.requests = requests;
  return Object.keys(out).length ? out : undefined;
}

function items(map: Record<string, string> | undefined): V1KeyToPath[] | undefined {
  if (!map) return undefined;
  return Object.entries(map).map(([key, path]) => ({ key, path }));
}

function projection(
  request: ExecutionRequest,
  where: string,
  s: ProjectionSourceOptions,
): V1VolumeProjection {
  const out: V1VolumeProjection = {};
  const flat =
    s.path !== undefined || s.expiration_seconds !== undefined || s.audience !== undefined;
  if (s.service_account_token) {
    if (flat)
      fail(
        request,
        `${where}: give path/expiration_seconds/audience once, under service_account_token`,
      );
    const t = s.service_account_token;
    out.serviceAccountToken = {
      path: t.path,
      ...(t.expiration_seconds !== undefined ? { expirationSeconds: t.expiration_seconds } : {}),
      ...(t.audience !== undefined ? { audience: t.audience } : {}),
    };
  } else if ("service_account_token" in s || flat) {
    // The seed's form: `- service_account_token:` with its fields beside it.
    if (s.path === undefined) fail(request, `${where}: service_account_token needs a path`);
    out.serviceAccountToken = {
      path: s.path,
      ...(s.expiration_seconds !== undefined ? { expirationSeconds: s.expiration_seconds } : {}),
      ...(s.audience !== undefined ? { audience: s.audience } : {}),
    };
  }
  if (s.secret) {
    out.secret = {
      name: s.secret.name,
      ...(s.secret.items ? { items: items(s.secret.items)! } : {}),
      ...(s.secret.optional !== undefined ? { optional: s.secret.optional } : {}),
    };
  }
  if (s.config_map) {
    out.configMap = {
      name: s.config_map.name,
      ...(s.config_map.items ? { items: items(s.config_map.items)! } : {}),
      ...(s.config_map.optional !== undefined ? { optional: s.config_map.optional } : {}),
    };
  }
  if (Object.keys(out).length === 0) {
    fail(request, `${where}: a projected source needs service_account_token, secret or config_map`);
  }
  return out;
}

/**
 * Pod-level volumes shared by every container: identical definitions (the same
 * projected token in the main container and a service) become one volume; a name
 * reused for a different source gets a suffix naming its kind, so names stay unique.
 */
class VolumeSet {
  readonly volumes: V1Volume[] = [];
  readonly #byName = new Map<string, string>();

  add(volume: V1Volume, kind: string): string {
    const key = JSON.stringify({ ...volume, name: undefined });
    let name = dnsLabel(volume.name);
    const existing = this.#byName.get(name);
    if (existing === key) return name;
    if (existing !== undefined) {
      name = dnsLabel(`${name}-${kind}`);
      for (let i = 2; this.#byName.has(name) && this.#byName.get(name) !== key; i++) {
        name = dnsLabel(`${volume.name}-${kind}-${i}`);
      }
      if (this.#byName.get(name) === key) return name;
    }
    this.#byName.set(name, key);
    this.volumes.push({ ...volume, name });
    return name;
  }
}

function mount(
  name: string,
  v: { mount_path: string; sub_path?: string; read_only?: boolean },
): V1VolumeMount {
  return {
    name,
    mountPath: v.mount_path,
    ...(v.sub_path !== undefined ? { subPath: v.sub_path } : {}),
    ...(v.read_only !== undefined ? { readOnly: v.read_only } : {}),
  };
}

function addVolumes(
  request: ExecutionRequest,
  where: string,
  set: VolumeSet,
  v: Volumes | undefined,
  warnings: string[],
): V1VolumeMount[] {
  const mounts: V1VolumeMount[] = [];
  if (!v) return mounts;
  for (const h of v.host_path ?? []) {
    const path = h.host_path ?? h.mount_path;
    if (!path.startsWith("/"))
      warnings.push(`${where}host_path '${h.name}': '${path}' is not an absolute path`);
    const name = set.add(
      { name: h.name, hostPath: { path, ...(h.type !== undefined ? { type: h.type } : {}) } },
      "host-path",
    );
    mounts.push(mount(name, h));
  }
  for (const p of v.pvc ?? []) {
    const name = set.add(
      {
        name: p.name,
        persistentVolumeClaim: {
          claimName: p.claim_name ?? p.name,
          ...(p.read_only !== undefined ? { readOnly: p.read_only } : {}),
        },
      },
      "pvc",
    );
    mounts.push(mount(name, p));
  }
  for (const c of v.config_map ?? []) {
    const name = set.add(
      {
        name: c.name,
        configMap: {
          name: c.config_map_name ?? c.name,
          ...(c.items ? { items: items(c.items)! } : {}),
          ...(c.default_mode !== undefined ? { defaultMode: c.default_mode } : {}),
          ...(c.optional !== undefined ? { optional: c.optional } : {}),
        },
      },
      "config-map",
    );
    mounts.push(mount(name, c));
  }
  for (const s of v.secret ?? []) {
    const name = set.add(
      {
        name: s.name,
        secret: {
          secretName: s.secret_name ?? s.name,
          ...(s.items ? { items: items(s.items)! } : {}),
          ...(s.default_mode !== undefined ? { defaultMode: s.default_mode } : {}),
          ...(s.optional !== undefined ? { optional: s.optional } : {}),
        },
      },
      "secret",
    );
    mounts.push(mount(name, s));
  }
  for (const e of v.empty_dir ?? []) {
    const sizeLimit = quantity(request, `${where}empty_dir '${e.name}' size_limit`, e.size_limit);
    const name = set.add(
      {
        name: e.name,
        emptyDir: {
          ...(e.medium !== undefined ? { medium: e.medium } : {}),
          ...(sizeLimit !== undefined ? { sizeLimit } : {}),
        },
      },
      "empty-dir",
    );
    mounts.push(mount(name, e));
  }
  for (const [i, p] of (v.projected ?? []).entries()) {
    const name = set.add(
      {
        name: p.name,
        projected: {
          sources: p.sources.map((s, j) =>
            projection(request, `${where}projected[${i}].sources[${j}]`, s),
          ),
          ...(p.default_mode !== undefined ? { defaultMode: p.default_mode } : {}),
        },
      },
      "projected",
    );
    mounts.push(mount(name, p));
  }
  return mounts;
}

function term(t: NodeSelectorTermOptions): V1NodeSelectorTerm {
  const req = (r: { key: string; operator: string; values?: string[] }) => ({
    key: r.key,
    operator: r.operator,
    ...(r.values ? { values: r.values } : {}),
  });
  return {
    ...(t.match_expressions ? { matchExpressions: t.match_expressions.map(req) } : {}),
    ...(t.match_fields ? { matchFields: t.match_fields.map(req) } : {}),
  };
}

function affinity(a: AffinityOptions): V1Affinity {
  const src = a.node_affinity ?? a;
  const required = src.required_during_scheduling_ignored_during_execution;
  const preferred = src.preferred_during_scheduling_ignored_during_execution;
  return {
    nodeAffinity: {
      ...(required
        ? {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: required.node_selector_terms.map(term),
            },
          }
        : {}),
      ...(preferred
        ? {
            preferredDuringSchedulingIgnoredDuringExecution: preferred.map((p) => ({
              weight: p.weight,
              preference: term(p.preference),
            })),
          }
        : {}),
    },
  };
}

/** `key` -> Exists, `key=value` -> Equal; the value is the taint effect. */
function tolerations(map: Record<string, string>): V1Toleration[] {
  return Object.entries(map).map(([k, effect]) => {
    const eq = k.indexOf("=");
    return eq >= 0
      ? { key: k.slice(0, eq), operator: "Equal", value: k.slice(eq + 1), effect }
      : { key: k, operator: "Exists", effect };
  });
}

/** NET_RAW is dropped unless cap_add lists it; cap_drop wins over cap_add. */
function capabilities(config: KubernetesConfig) {
  const state = new Map<string, boolean>([["NET_RAW", false]]);
  for (const c of config.cap_add ?? []) state.set(c, true);
  for (const c of config.cap_drop ?? []) state.set(c, false);
  const add = [...state].filter(([, on]) => on).map(([c]) => c);
  const drop = [...state].filter(([, on]) => !on).map(([c]) => c);
  return { ...(add.length ? { add } : {}), ...(drop.length ? { drop } : {}) };
}

function envVars(...layers: (Record<string, string> | undefined)[]) {
  const merged: Record<string, string> = {};
  for (const l of layers) Object.assign(merged, l);
  return Object.entries(merged).map(([name, value]) => ({ name, value }));
}

function ports(list: { number: number; protocol?: string; name?: string }[] | undefined) {
  return list?.map((p) => ({
    containerPort: p.number,
    protocol: (p.protocol ?? "TCP").toUpperCase(),
    ...(p.name ? { name: dnsLabel(p.name, 15) } : {}),
  }));
}

/** The script and how to start it: `sh -c` of the composed before/script/after script. */
function commandOf(request: ExecutionRequest, container: ContainerOptions) {
  const task = request.task;
  const def = container.image_definition ?? container.imageDefinition;
  if (task.beforeScript.length + task.script.length + task.afterScript.length === 0) {
    return {
      ...(def?.entrypoint ? { command: def.entrypoint } : {}),
      ...(def?.command ? { args: def.command } : {}),
    };
  }
  const shell = def?.entrypoint ?? ["/bin/sh", "-c"];
  const script = composeShellScript(task, { bash: /(^|\/)bash$/.test(shell[0] ?? "") });
  if (Buffer.byteLength(script) > MAX_SCRIPT) {
    fail(
      request,
      `the script is ${Buffer.byteLength(script)} bytes; a pod argument holds at most ${MAX_SCRIPT}`,
    );
  }
  return { command: shell, args: [script] };
}

function serviceName(name: string): string {
  return dnsLabel(name.startsWith("svc-") ? name : `svc-${name}`);
}

export function buildPod(input: PodInput): BuiltPod {
  const { request, options, config } = input;
  const task = request.task;
  const warnings: string[] = [];
  const container = options.container ?? {};
  const def = container.image_definition ?? container.imageDefinition;
  const image = container.image ?? def?.name;
  if (!image) fail(request, "container.image is required, e.g. container: {image: alpine:3.20}");
  if (options.privileged && config.allow_privileged === false) {
    fail(
      request,
      "privileged pods are not allowed by this ant (kubernetes.allow_privileged: false)",
    );
  }
  if (request.stdinPath)
    fail(request, "KUBERNETES tasks do not take stdin; use a DOCKER or SHELL task");

  const name = podNameFor(request, options);
  const namespace = config.namespace ?? "default";
  const pullPolicy = PULL_POLICY[pullPolicyOf(config)];
  const privileged = options.privileged === true;
  const securityContext = {
    ...(privileged ? { privileged: true } : { allowPrivilegeEscalation: false }),
    capabilities: capabilities(config),
  };
  const set = new VolumeSet();
  const antMounts = (where: string) => addVolumes(request, where, set, config.volumes, warnings);

  // Services first in the volume set only for naming stability of the main container's.
  const mainMounts = [
    ...antMounts("kubernetes.volumes."),
    ...addVolumes(request, "container.volumes.", set, container.volumes, warnings),
  ];
  for (const [i, d] of (container.devices ?? []).entries()) {
    const [host = d, inside = host] = d.split(":");
    if (!host.startsWith("/"))
      warnings.push(`container.devices[${i}]: '${host}' is not a device path`);
    const vol = set.add({ name: `device-${i}`, hostPath: { path: host } }, "device");
    mainMounts.push({ name: vol, mountPath: inside.startsWith("/") ? inside : `/dev/${inside}` });
  }
  if (container.bind_dir) {
    const vol = set.add(
      { name: "bind-dir", hostPath: { path: container.bind_dir, type: "DirectoryOrCreate" } },
      "bind",
    );
    mainMounts.push({ name: vol, mountPath: container.bind_dir });
  }

  const svcNames = new Set<string>();
  const services: V1Container[] = (options.services ?? []).map((s: ServiceOptions, i) => {
    const cname = serviceName(s.name);
    if (svcNames.has(cname)) fail(request, `two services are named '${s.name}'`);
    svcNames.add(cname);
    const where = `services[${i}].`;
    const mounts = [
      ...antMounts("kubernetes.volumes."),
      ...addVolumes(request, `${where}volumes.`, set, s.volumes, warnings),
    ];
    const res = resources(request, [where, s]);
    const p = ports(s.ports);
    return {
      name: cname,
      image: s.image,
      imagePullPolicy: pullPolicy,
      ...(s.entrypoint ? { command: s.entrypoint } : {}),
      ...(s.command ? { args: s.command } : {}),
      ...(s.working_directory ? { workingDir: s.working_directory } : {}),
      env: envVars(config.environment, s.environment),
      ...(p ? { ports: p } : {}),
      ...(res ? { resources: res } : {}),
      ...(mounts.length ? { volumeMounts: mounts } : {}),
      securityContext,
    };
  });

  let mainName = dnsLabel(options.name ?? task.taskType);
  if (svcNames.has(mainName)) mainName = "main";
  const res = resources(request, ["", options], ["container.", container]);
  const p = ports(def?.ports);
  const main: V1Container = {
    name: mainName,
    image,
    imagePullPolicy: pullPolicy,
    ...commandOf(request, container),
    ...(options.working_directory ? { workingDir: options.working_directory } : {}),
    env: envVars(config.environment, request.env),
    ...(p ? { ports: p } : {}),
    ...(res ? { resources: res } : {}),
    ...(mainMounts.length ? { volumeMounts: mainMounts } : {}),
    securityContext,
  };
  for (const c of [main, ...services]) {
    const seen = new Set<string>();
    for (const m of c.volumeMounts ?? []) {
      if (seen.has(m.mountPath))
        warnings.push(
          `container '${c.name}' mounts two volumes at ${m.mountPath}; the API server refuses duplicate mount paths`,
        );
      seen.add(m.mountPath);
    }
  }

  const labels: Record<string, string> = {
    ...options.pod_labels,
    [LABELS.managed]: "true",
    [LABELS.owner]: labelValue(input.owner),
    [LABELS.unitId]: request.executionId,
    [LABELS.taskType]: labelValue(task.taskType),
    ...(request.jobRequestId !== undefined
      ? { [LABELS.jobRequestId]: String(request.jobRequestId) }
      : {}),
  };
  const annotations: Record<string, string> = {
    ...options.pod_annotations,
    [ANNOTATIONS.unitDir]: request.unitDir,
    // No pod field for these: kept where admission controllers and people can see them.
    ...(options.network_mode ? { [ANNOTATIONS.networkMode]: options.network_mode } : {}),
    ...(container.volume_driver ? { [ANNOTATIONS.volumeDriver]: container.volume_driver } : {}),
  };

  const sc = config.pod_security_context;
  const podSecurity = sc
    ? {
        ...(sc.fs_group !== undefined ? { fsGroup: sc.fs_group } : {}),
        ...(sc.run_as_group !== undefined ? { runAsGroup: sc.run_as_group } : {}),
        ...(sc.run_as_non_root !== undefined ? { runAsNonRoot: sc.run_as_non_root } : {}),
        ...(sc.run_as_user !== undefined ? { runAsUser: sc.run_as_user } : {}),
        ...(sc.supplemental_groups ? { supplementalGroups: sc.supplemental_groups } : {}),
        ...(sc.fs_group_change_policy ? { fsGroupChangePolicy: sc.fs_group_change_policy } : {}),
      }
    : undefined;
  const dns = config.dns_config;
  const dnsConfig = dns
    ? {
        ...(dns.nameservers ? { nameservers: dns.nameservers } : {}),
        ...(dns.searches ? { searches: dns.searches } : {}),
        ...(dns.options
          ? {
              options: dns.options.map((o) => {
                if (typeof o !== "string")
                  return o.value === undefined
                    ? { name: o.name }
                    : { name: o.name, value: String(o.value) };
                const [n = o, v] = o.split(":");
                return v === undefined ? { name: n } : { name: n, value: v };
              }),
            }
          : {}),
      }
    : undefined;
  if (config.dns_policy === "none" && !dns?.nameservers?.length) {
    warnings.push(
      "dns_policy none needs dns_config with at least one nameserver; the API server refuses the pod without it",
    );
  }
  const pullSecrets = [
    ...(config.image_pull_secrets ?? []),
    ...(input.registrySecret ? [input.registrySecret] : []),
  ];

  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels, annotations },
    spec: {
      restartPolicy: "Never",
      containers: [main, ...services],
      ...(set.volumes.length ? { volumes: set.volumes } : {}),
      ...(config.service_account ? { serviceAccountName: config.service_account } : {}),
      ...(pullSecrets.length ? { imagePullSecrets: pullSecrets.map((n) => ({ name: n })) } : {}),
      ...(config.dns_policy ? { dnsPolicy: DNS_POLICY[config.dns_policy] } : {}),
      ...(dnsConfig ? { dnsConfig } : {}),
      ...(podSecurity ? { securityContext: podSecurity } : {}),
      ...(config.host_aliases
        ? { hostAliases: config.host_aliases.map((h) => ({ ip: h.ip, hostnames: h.hostnames })) }
        : {}),
      ...(options.host_network ? { hostNetwork: true } : {}),
      ...(options.node_selector ? { nodeSelector: options.node_selector } : {}),
      ...(options.node_tolerations ? { tolerations: tolerations(options.node_tolerations) } : {}),
      ...(options.affinity ? { affinity: affinity(options.affinity) } : {}),
      ...(input.graceSeconds !== undefined
        ? { terminationGracePeriodSeconds: input.graceSeconds }
        : {}),
    },
  };
  return { pod, name, namespace, mainContainer: mainName, warnings };
}

/**
 * The kubernetes.io/dockerconfigjson secret carrying the registry credentials, for the
 * pod's imagePullSecrets (one per execution, deleted with its pod).
 */
export function registrySecret(
  config: KubernetesConfig,
  name: string,
  namespace: string,
  labels: Record<string, string>,
): V1Secret | undefined {
  const r = config.registry;
  if (!r?.username && !r?.password) return undefined;
  const server = r.registry ?? "https://index.docker.io/v1/";
  const username = r.username ?? "";
  const password = r.password ?? "";
  const auth = Buffer.from(`${username}:${password}`).toString("base64");
  const json = JSON.stringify({ auths: { [server]: { username, password, auth } } });
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/dockerconfigjson",
    metadata: { name, namespace, labels },
    data: { ".dockerconfigjson": Buffer.from(json).toString("base64") },
  };
}
