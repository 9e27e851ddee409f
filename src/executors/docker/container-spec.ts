/**
 * Maps a DOCKER task (seed 000 "Docker": name, environment, working_directory,
 * container.image / image_definition, privileged, network_mode, host_network, CPU and
 * memory limits, services) and the ant's `docker:` config onto Engine API bodies: the
 * main container, one sidecar container per service, and the per-task network that lets
 * the script reach each service by its name. Pure: no I/O, so it is tested on its own.
 */
import { posix } from "node:path";
import { ExecutorError } from "../../core/errors.ts";
import type { ExecutionRequest } from "../../core/executor.ts";
import {
  parseCpu,
  parseMemory,
  type ContainerOptions,
  type DockerConfig,
  type ServiceOptions,
  type TaskContainerOptions,
  type Volumes,
} from "../container-options.ts";
import { composeShellScript } from "../shell/shell-script.ts";

/** Label keys on everything colony creates, so a restarted colony finds its own. */
export const LABELS = {
  managed: "colony.managed",
  owner: "colony.owner",
  unitId: "colony.unit-id",
  unitDir: "colony.unit-dir",
  role: "colony.role",
  service: "colony.service",
  jobRequestId: "colony.job-request-id",
  jobType: "colony.job-type",
  taskType: "colony.task-type",
  /** The container path of the task's work dir (tasks with artifacts or dependencies). */
  workDir: "colony.work-dir",
} as const;

/** The container's work dir of a task with artifacts or dependencies and no working_directory. */
export const DEFAULT_CONTAINER_WORK_DIR = "/colony/work";

/** One argument of exec is limited to 128 KiB on Linux: longer scripts go in a file. */
export const MAX_INLINE_SCRIPT = 64 * 1024;
export const SCRIPT_PATH = "/.colony-script.sh";

/** The subset of the Engine API's container create body colony sets. */
export interface CreateBody {
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[];
  Env: string[];
  WorkingDir?: string;
  Labels: Record<string, string>;
  ExposedPorts?: Record<string, Record<string, never>>;
  AttachStdin?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  HostConfig: {
    Init: boolean;
    Privileged: boolean;
    NetworkMode?: string;
    NanoCpus?: number;
    CpuShares?: number;
    Memory?: number;
    MemoryReservation?: number;
    Binds?: string[];
    Mounts?: { Type: "volume" | "tmpfs"; Target: string; ReadOnly?: boolean }[];
    VolumeDriver?: string;
    Devices?: { PathOnHost: string; PathInContainer: string; CgroupPermissions: string }[];
  };
  NetworkingConfig?: { EndpointsConfig: Record<string, { Aliases?: string[] }> };
}

export interface ContainerPlan {
  /** The main container's name: the task's name (or job-task) and the unit id. */
  name: string;
  image: string;
  body: CreateBody;
  /** The script, when it is too long to pass inline (upload it to SCRIPT_PATH). */
  scriptFile?: string;
  services: { name: string; containerName: string; image: string; body: CreateBody }[];
  /** The per-task network, created when the task has services. */
  network?: { name: string; labels: Record<string, string> };
  /**
   * The work dir inside the main container, when the request has a host work dir
   * (artifacts or dependencies): the executor copies the host dir in before the start
   * and back out after the exit.
   */
  workDir?: string;
}

export interface PlanInput {
  request: ExecutionRequest;
  options: TaskContainerOptions;
  config: DockerConfig;
  /** Value of the colony.owner label (the node id). */
  owner: string;
}

function fail(request: ExecutionRequest, message: string): never {
  throw new ExecutorError(
    "COLONY_INVALID_CONTAINER_OPTIONS",
    `DOCKER task '${request.task.taskType}': ${message}`,
    { retryable: false },
  );
}

/** A Docker object name: [a-zA-Z0-9][a-zA-Z0-9_.-]*, kept short. */
export function dockerName(text: string): string {
  const cleaned = text.replace(/[^a-zA-Z0-9_.-]+/g, "-").replace(/^[^a-zA-Z0-9]+/, "");
  return (cleaned || "task").slice(0, 100);
}

function envList(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** Resource limits: cpu_limit -> NanoCpus, cpu_request -> CpuShares, memory -> bytes. */
function resources(
  request: ExecutionRequest,
  where: string,
  r: Pick<ContainerOptions, "cpu_limit" | "cpu_request" | "memory_limit" | "memory_request">,
): Partial<CreateBody["HostConfig"]> {
  const out: Partial<CreateBody["HostConfig"]> = {};
  const cpu = (key: "cpu_limit" | "cpu_request") => {
    const v = r[key];
    if (v === undefined) return undefined;
    return (
      parseCpu(v) ?? fail(request, `${where}${key} '${v}' is not a CPU amount (e.g. 1, 0.5, 500m)`)
    );
  };
  const mem = (key: "memory_limit" | "memory_request") => {
    const v = r[key];
    if (v === undefined) return undefined;
    return (
      parseMemory(v) ??
      fail(request, `${where}${key} '${v}' is not a memory size (e.g. 512Mi, 1Gi)`)
    );
  };
  const limit = cpu("cpu_limit");
  if (limit !== undefined) out.NanoCpus = Math.round(limit * 1e9);
  const req = cpu("cpu_request");
  if (req !== undefined) out.CpuShares = Math.max(2, Math.round(req * 1024));
  const memLimit = mem("memory_limit");
  if (memLimit !== undefined) out.Memory = memLimit;
  const memReq = mem("memory_request");
  if (memReq !== undefined) out.MemoryReservation = memReq;
  return out;
}

/** host_path -> bind mounts, empty_dir -> anonymous volumes (tmpfs with medium Memory). */
function volumes(
  request: ExecutionRequest,
  where: string,
  v: Volumes | undefined,
): Pick<CreateBody["HostConfig"], "Binds" | "Mounts"> {
  const out: { Binds: string[]; Mounts: NonNullable<CreateBody["HostConfig"]["Mounts"]> } = {
    Binds: [],
    Mounts: [],
  };
  if (!v) return {};
  for (const kind of ["pvc", "config_map", "secret", "projected"] as const) {
    if (v[kind]?.length) {
      fail(
        request,
        `${where}volumes.${kind} needs a Kubernetes cluster; use method: KUBERNETES, or host_path / empty_dir with DOCKER`,
      );
    }
  }
  for (const h of v.host_path ?? []) {
    out.Binds.push(`${h.host_path ?? h.mount_path}:${h.mount_path}${h.read_only ? ":ro" : ""}`);
  }
  for (const e of v.empty_dir ?? []) {
    out.Mounts.push({
      Type: e.medium?.toLowerCase() === "memory" ? "tmpfs" : "volume",
      Target: e.mount_path,
      ...(e.read_only ? { ReadOnly: true } : {}),
    });
  }
  return {
    ...(out.Binds.length ? { Binds: out.Binds } : {}),
    ...(out.Mounts.length ? { Mounts: out.Mounts } : {}),
  };
}

function ports(list: { number: number; protocol?: string }[] | undefined) {
  if (!list?.length) return undefined;
  const out: Record<string, Record<string, never>> = {};
  for (const p of list) out[`${p.number}/${(p.protocol ?? "tcp").toLowerCase()}`] = {};
  return out;
}

function serviceBody(
  input: PlanInput,
  service: ServiceOptions,
  index: number,
  labels: Record<string, string>,
  network: string,
): CreateBody {
  const where = `services[${index}].`;
  const env = { ...input.config.environment, ...service.environment };
  return {
    Image: service.image,
    ...(service.entrypoint ? { Entrypoint: service.entrypoint } : {}),
    ...(service.command ? { Cmd: service.command } : {}),
    Env: envList(env),
    ...(service.working_directory ? { WorkingDir: service.working_directory } : {}),
    Labels: { ...labels, [LABELS.role]: "service", [LABELS.service]: service.name },
    ...(service.ports ? { ExposedPorts: ports(service.ports) } : {}),
    HostConfig: {
      Init: true,
      Privileged: input.options.privileged === true,
      NetworkMode: network,
      ...resources(input.request, where, service),
      ...volumes(input.request, where, service.volumes),
    },
    NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [service.name] } } },
  };
}

/** The script and how to start it: `sh -c` of the composed before/script/after script. */
function command(
  input: PlanInput,
  container: ContainerOptions,
): { Entrypoint?: string[]; Cmd?: string[]; scriptFile?: string } {
  const task = input.request.task;
  const def = container.image_definition ?? container.imageDefinition;
  const hasScript = task.beforeScript.length + task.script.length + task.afterScript.length > 0;
  if (!hasScript) {
    // No script: the image's own command (or the image definition's) runs.
    return {
      ...(def?.entrypoint ? { Entrypoint: def.entrypoint } : {}),
      ...(def?.command ? { Cmd: def.command } : {}),
    };
  }
  const shell = def?.entrypoint ?? ["/bin/sh", "-c"];
  const script = composeShellScript(task, { bash: /(^|\/)bash$/.test(shell[0] ?? "") });
  if (Buffer.byteLength(script) > MAX_INLINE_SCRIPT) {
    return { Entrypoint: shell, Cmd: [`. ${SCRIPT_PATH}`], scriptFile: script };
  }
  return { Entrypoint: shell, Cmd: [script] };
}

/**
 * The container side of a request's work dir: the task's working_directory, else
 * /colony/work; undefined when the request has none (no artifacts, no dependencies).
 */
export function containerWorkDir(
  request: ExecutionRequest,
  options: TaskContainerOptions,
): string | undefined {
  if (!request.workDir) return undefined;
  const wd = options.working_directory;
  if (wd === undefined || wd === "") return DEFAULT_CONTAINER_WORK_DIR;
  if (!wd.startsWith("/")) {
    fail(
      request,
      `working_directory '${wd}' must be an absolute path (the task's artifacts and dependencies are copied there), e.g. /srv/app`,
    );
  }
  const dir = posix.normalize(wd).replace(/\/+$/, "");
  if (dir === "") {
    fail(
      request,
      `working_directory '${wd}' is the container's root, which cannot hold the task's artifacts and dependencies; use a directory such as /srv/app, or leave it unset for ${DEFAULT_CONTAINER_WORK_DIR}`,
    );
  }
  return dir;
}

/** The registry host of an image reference (docker.io when it names none). */
export function registryOf(image: string): string {
  const first = image.split("/")[0] ?? "";
  if (image.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost"))
    return first;
  return "docker.io";
}

const HUB = new Set([
  "docker.io",
  "index.docker.io",
  "registry-1.docker.io",
  "registry.hub.docker.com",
]);

/**
 * The X-Registry-Auth header value for pulling `image`, when the configured registry
 * credentials are for its registry (credentials are never sent to another registry).
 */
export function registryAuth(config: DockerConfig, image: string): string | undefined {
  const r = config.registry;
  if (!r?.username && !r?.password) return undefined;
  const server = r.registry?.replace(/^https?:\/\//, "").replace(/\/.*$/, "") || "docker.io";
  const host = registryOf(image);
  const same = host === server || (HUB.has(host) && HUB.has(server));
  if (!same) return undefined;
  const auth = { username: r.username ?? "", password: r.password ?? "", serveraddress: server };
  return Buffer.from(JSON.stringify(auth)).toString("base64url");
}

export function buildContainerPlan(input: PlanInput): ContainerPlan {
  const { request, options, config } = input;
  const task = request.task;
  const container = options.container ?? {};
  const def = container.image_definition ?? container.imageDefinition;
  const image = container.image ?? def?.name;
  if (!image) fail(request, "container.image is required, e.g. container: {image: alpine:3.20}");
  for (const key of ["affinity", "node_selector", "node_tolerations", "pod_annotations"] as const) {
    if (options[key] !== undefined)
      fail(request, `${key} schedules Kubernetes pods; use method: KUBERNETES, or remove it`);
  }
  if (options.privileged && config.allow_privileged === false) {
    fail(
      request,
      "privileged containers are not allowed by this ant (docker.allow_privileged: false)",
    );
  }
  const id = request.executionId;
  const base = options.name ?? `${request.jobType ?? "job"}-${task.taskType}`;
  const name = dockerName(`${base}-${id}`);
  const labels: Record<string, string> = {
    [LABELS.managed]: "true",
    [LABELS.owner]: input.owner,
    [LABELS.unitId]: id,
    [LABELS.unitDir]: request.unitDir,
    [LABELS.taskType]: task.taskType,
    ...(request.jobType ? { [LABELS.jobType]: request.jobType } : {}),
    ...(request.jobRequestId !== undefined
      ? { [LABELS.jobRequestId]: String(request.jobRequestId) }
      : {}),
  };

  const services = options.services ?? [];
  const names = new Set<string>();
  for (const s of services) {
    if (names.has(s.name)) fail(request, `two services are named '${s.name}'`);
    names.add(s.name);
  }
  let networkMode: string | undefined;
  let network: ContainerPlan["network"];
  if (services.length > 0) {
    if (options.host_network || options.network_mode) {
      fail(
        request,
        "services run on a network of their own for the task; remove network_mode/host_network or the services",
      );
    }
    const netName = dockerName(`colony-net-${id}`);
    network = { name: netName, labels: { ...labels, [LABELS.role]: "network" } };
    networkMode = netName;
  } else if (options.host_network) {
    networkMode = "host"; // host_network wins over network_mode (the seed sets both)
  } else if (options.network_mode) {
    networkMode = options.network_mode;
  }

  const cmd = command(input, container);
  const workDir = containerWorkDir(request, options);
  // The script sees the work dir at its container path, not the host's.
  const env = {
    ...config.environment,
    ...request.env,
    ...(workDir ? { COLONY_WORK_DIR: workDir } : {}),
  };
  const devices = (container.devices ?? []).map((d) => {
    const [host = d, inside = host, perms = "rwm"] = d.split(":");
    return { PathOnHost: host, PathInContainer: inside, CgroupPermissions: perms };
  });
  const vols = volumes(request, "container.", container.volumes);
  if (container.bind_dir) {
    vols.Binds = [...(vols.Binds ?? []), `${container.bind_dir}:${container.bind_dir}`];
  }
  const body: CreateBody = {
    Image: image,
    ...(cmd.Entrypoint ? { Entrypoint: cmd.Entrypoint } : {}),
    ...(cmd.Cmd ? { Cmd: cmd.Cmd } : {}),
    Env: envList(env),
    ...(workDir
      ? { WorkingDir: workDir }
      : options.working_directory
        ? { WorkingDir: options.working_directory }
        : {}),
    Labels: {
      ...options.pod_labels,
      ...labels,
      [LABELS.role]: "main",
      ...(workDir ? { [LABELS.workDir]: workDir } : {}),
    },
    ...(def?.ports ? { ExposedPorts: ports(def.ports) } : {}),
    ...(request.stdinPath ? { AttachStdin: true, OpenStdin: true, StdinOnce: true } : {}),
    HostConfig: {
      Init: true,
      Privileged: options.privileged === true,
      ...(networkMode ? { NetworkMode: networkMode } : {}),
      // Task-level limits, then the container's (the seed puts them in either place).
      ...resources(request, "", options),
      ...resources(request, "container.", container),
      ...vols,
      ...(container.volume_driver ? { VolumeDriver: container.volume_driver } : {}),
      ...(devices.length ? { Devices: devices } : {}),
    },
    ...(network && def?.alias
      ? { NetworkingConfig: { EndpointsConfig: { [network.name]: { Aliases: [def.alias] } } } }
      : {}),
  };
  return {
    name,
    image,
    body,
    ...(cmd.scriptFile ? { scriptFile: cmd.scriptFile } : {}),
    services: services.map((s, i) => ({
      name: s.name,
      containerName: dockerName(`${name}-svc-${s.name}`),
      image: s.image,
      body: serviceBody(input, s, i, labels, network!.name),
    })),
    ...(network ? { network } : {}),
    ...(workDir ? { workDir } : {}),
  };
}

/** A one-file ustar archive (what PUT /containers/{id}/archive takes). */
export function tarOneFile(path: string, content: string, mode = 0o644): Buffer {
  const data = Buffer.from(content);
  const header = Buffer.alloc(512, 0);
  const name = path.replace(/^\/+/, "");
  header.write(name.slice(0, 100), 0, "utf8");
  header.write(`${mode.toString(8).padStart(7, "0")}\0`, 100);
  header.write("0000000\0", 108); // uid
  header.write("0000000\0", 116); // gid
  header.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
  header.write(
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, "0")}\0`,
    136,
  );
  header.write("        ", 148); // checksum placeholder
  header.write("0", 156); // regular file
  header.write("ustar\0", 257);
  header.write("00", 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512, 0);
  return Buffer.concat([header, data, pad, Buffer.alloc(1024, 0)]);
}
