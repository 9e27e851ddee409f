/**
 * A real colony server on loopback for tests: `startServer` on an ephemeral port with a
 * real SQLite file in a temp dir and the real engine running real processes. Auth is on
 * (the admin token the server wrote is in `adminToken`) unless `auth: false`.
 * `close()` cancels what still runs, stops the server and removes the dir.
 */
import { copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/config.ts";
import type { Embedded } from "../../src/runtime/embedded.ts";
import { startServer } from "../../src/server/server.ts";
import { tempDir } from "./cli.ts";

export interface TestServer {
  url: string;
  dataDir: string;
  /** The admin token the server wrote on first start (undefined with auth off). */
  adminToken: string | undefined;
  runtime: Embedded;
  close(): Promise<void>;
}

export async function startTestServer(
  options: {
    auth?: boolean;
    configYaml?: string;
    /** A data dir whose secret.key this server gets (servers sharing a store need one key). */
    secretKeyFrom?: string;
  } = {},
): Promise<TestServer> {
  const dir = tempDir("colony-api-");
  if (options.secretKeyFrom !== undefined) {
    copyFileSync(join(options.secretKeyFrom, "secret.key"), join(dir.path, "secret.key"));
  }
  let file: string | undefined;
  if (options.configYaml !== undefined) {
    file = join(dir.path, "colony.yaml");
    writeFileSync(file, options.configYaml);
  }
  const config = loadConfig({
    file,
    overrides: {
      dataDir: dir.path,
      host: "127.0.0.1",
      port: 0,
      insecureNoAuth: options.auth === false,
    },
  });
  let server;
  try {
    server = await startServer(config, { log: () => undefined });
  } catch (error) {
    dir.remove();
    throw error;
  }
  // A second server on a shared store finds an admin token there and writes no file.
  const adminToken =
    server.adminTokenFile && existsSync(server.adminTokenFile)
      ? readFileSync(server.adminTokenFile, "utf8").trim()
      : undefined;
  const running = server;
  return {
    url: server.url,
    dataDir: dir.path,
    adminToken,
    runtime: server.runtime,
    async close() {
      // Cancel what still runs, so no process outlives the test.
      const { engine } = running.runtime;
      const ids = engine.activeJobIds();
      await Promise.all(ids.map((id) => engine.cancel(id).catch(() => undefined)));
      await Promise.race([
        Promise.all(ids.map((id) => engine.waitFor(id))),
        new Promise((r) => setTimeout(r, 10_000).unref()),
      ]);
      running.app.server.closeAllConnections();
      await running.close({ graceMs: 0 });
      dir.remove();
    },
  };
}
