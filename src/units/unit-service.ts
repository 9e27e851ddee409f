/**
 * Wires work units into a server process: the work types, peers and signing keys of the
 * config, the unit manager (on the runtime's SHELL executor and secret key, with task
 * executions as units too) and the control service. `startServer` starts it before the
 * HTTP API and closes it before the runtime.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/config.ts";
import { ColonyError } from "../core/errors.ts";
import { loadOrCreateKey } from "../core/secrets.ts";
import type { Embedded } from "../runtime/embedded.ts";
import { startControlServer, type ControlServer } from "./control-server.ts";
import { PeerClient } from "./peer-client.ts";
import { UnitManager, type TaskUnitSource } from "./unit-manager.ts";
import { taskUnit, type UnitSnapshot } from "./unit-model.ts";
import { loadPrivateKey, loadPublicKey } from "./work-signing.ts";
import { loadWorkTypes } from "./work-types.ts";

export interface UnitService {
  manager: UnitManager;
  control: ControlServer;
  close(): Promise<void>;
}

/** This package's version (src/ and dist/ are both two levels below package.json). */
export const COLONY_VERSION: string = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;

function peersOf(config: Config): Map<string, PeerClient> {
  const peers = new Map<string, PeerClient>();
  config.peers.forEach((p, i) => {
    if (p.node_id === config.nodeId) {
      throw new ColonyError(
        "COLONY_CONFIG_INVALID",
        `peers[${i}].node_id: '${p.node_id}' is this node's own id; list other nodes only`,
        { status: 400 },
      );
    }
    if (peers.has(p.node_id)) {
      throw new ColonyError(
        "COLONY_CONFIG_INVALID",
        `peers[${i}].node_id: '${p.node_id}' is listed twice`,
        { status: 400 },
      );
    }
    peers.set(p.node_id, new PeerClient(p));
  });
  return peers;
}

/** Task executions of the runtime's store, seen as units. */
function taskUnitSource(config: Config, runtime: Embedded): TaskUnitSource {
  const size = (id: string) => {
    try {
      return statSync(join(runtime.dataDir, "units", id, "stdout")).size;
    } catch {
      return 0;
    }
  };
  return {
    async get(id) {
      if (!/^[A-Za-z0-9]{8}$/.test(id)) return undefined;
      const t = await runtime.store.getTaskExecution(id);
      return t ? taskUnit(t, size(id), config.nodeId) : undefined;
    },
    output(id, options) {
      return runtime.engine.outputStream(id, { offset: options.offset, follow: options.follow });
    },
  };
}

export async function startUnitService(
  config: Config,
  runtime: Embedded,
  log: (message: string) => void,
  onChange?: (unit: UnitSnapshot, what: "state" | "released") => void,
): Promise<UnitService> {
  const executor = runtime.executors.get("SHELL");
  if (!executor) {
    throw new ColonyError("COLONY_NO_EXECUTOR", "work units need the SHELL executor", {
      status: 500,
    });
  }
  const workTypes = loadWorkTypes(config.workTypes, {
    hasVerificationKey: config.workVerification !== undefined,
  });
  const peers = peersOf(config);
  const manager = new UnitManager({
    nodeId: config.nodeId,
    dataDir: runtime.dataDir,
    workTypes,
    peers,
    executor,
    secretKey: loadOrCreateKey(runtime.dataDir),
    ...(config.workSigning
      ? {
          signing: {
            key: loadPrivateKey(config.workSigning.privateKey),
            expirationMs: config.workSigning.tokenExpirationMs,
          },
        }
      : {}),
    ...(config.workVerification
      ? { verificationKey: loadPublicKey(config.workVerification.publicKey) }
      : {}),
    remote: {
      pollMs: config.units.remotePollMs,
      retryMinMs: Math.min(1000, config.units.remoteRetryMaxMs),
      retryMaxMs: config.units.remoteRetryMaxMs,
    },
    retentionMs: config.units.retentionMs,
    cancelWaitMs: config.killGraceMs + 2000,
    taskUnits: taskUnitSource(config, runtime),
    log,
    ...(onChange ? { onChange } : {}),
  });
  await manager.open();
  let control: ControlServer;
  try {
    control = await startControlServer({
      nodeId: config.nodeId,
      version: COLONY_VERSION,
      manager,
      socketPath: config.controlSocket,
      ...(config.units.controlTcp ? { tcp: config.units.controlTcp } : {}),
      log,
    });
  } catch (error) {
    await manager.close();
    throw error;
  }
  return {
    manager,
    control,
    async close() {
      await control.close();
      await manager.close();
    },
  };
}
