/**
 * Wires the DOCKER and KUBERNETES executors for one colony process: their ant config,
 * the kill grace, and what lets their reapers tell orphans from live work.
 *
 * - The owner label is the node id plus a short hash of the store (its URL, or the data
 *   dir for the embedded SQLite file): two colony processes on one machine with
 *   different stores never touch each other's containers, while processes sharing a
 *   store share its knowledge of which executions are still wanted.
 * - isExecutionLive asks the store: an execution that is unknown or finished has no one
 *   coming back for its container or pod, so the reaper may stop and remove it.
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import type { Executor } from "../core/executor.ts";
import { isFinal } from "../core/states.ts";
import type { DockerConfig, KubernetesConfig } from "../executors/container-options.ts";
import { createDockerExecutor } from "../executors/docker/docker-executor.ts";
import { createKubernetesExecutor } from "../executors/kubernetes/kubernetes-executor.ts";
import type { Store } from "../store/store.ts";

export interface ContainerExecutorsOptions {
  docker?: DockerConfig;
  kubernetes?: KubernetesConfig;
  /** The node id (colony.yaml node_id; default "colony"). */
  nodeId?: string;
}

export function containerOwner(
  nodeId: string,
  storeUrl: string | undefined,
  dataDir: string,
): string {
  const store = storeUrl ?? `sqlite:${resolve(dataDir)}`;
  const hash = createHash("sha256").update(store).digest("hex").slice(0, 10);
  return `${nodeId.replace(/[^A-Za-z0-9._-]+/g, "-").slice(0, 40)}.${hash}`;
}

export type ContainerExecutorsSetup = ContainerExecutorsOptions & {
  dataDir: string;
  storeUrl?: string;
  killGraceMs?: number;
  log?: (message: string) => void;
} & (
    | { store: Store }
    /** Without a store (a `colony ant` agent): whether this process still wants an execution. */
    | { isExecutionLive: (executionId: string) => Promise<boolean> }
  );

/** The DOCKER or the KUBERNETES executor (`colony run` makes each on its first task). */
export function createContainerExecutor(
  method: "DOCKER" | "KUBERNETES",
  options: ContainerExecutorsSetup,
): Executor {
  const owner = containerOwner(options.nodeId ?? "colony", options.storeUrl, options.dataDir);
  const isExecutionLive =
    "store" in options
      ? async (id: string): Promise<boolean> => {
          const execution = await options.store.getTaskExecution(id);
          return execution !== undefined && !isFinal(execution.state);
        }
      : options.isExecutionLive;
  const common = {
    owner,
    isExecutionLive,
    ...(options.killGraceMs !== undefined ? { killGraceMs: options.killGraceMs } : {}),
    ...(options.log ? { log: options.log } : {}),
  };
  return method === "DOCKER"
    ? createDockerExecutor({ ...common, config: options.docker ?? {} })
    : createKubernetesExecutor({ ...common, config: options.kubernetes ?? {} });
}
