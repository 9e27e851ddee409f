/**
 * Where the CLI's client commands find the server and their credentials, first match wins:
 *   server: --server, $COLONY_SERVER, {data dir}/server.json (written by a running
 *           `colony server`), http://127.0.0.1:7777
 *   token:  --token, $COLONY_TOKEN, --token-file / $COLONY_TOKEN_FILE,
 *           {data dir}/admin.token (written 0600 by the server on first start, so the
 *           CLI on the same machine works without flags)
 *   CA:     --ca / $COLONY_CA (PEM file to trust for https), or server.json's `ca`
 *   data dir: --data-dir, $COLONY_DATA_DIR, data_dir of --config / $COLONY_CONFIG, ./.colony
 * With a config file and no server.json yet, the server is the file's host and port.
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Config } from "../config/config.ts";

export const SERVER_INFO_FILE = "server.json";
export const ADMIN_TOKEN_FILE = "admin.token";

/** What a running server writes to {data dir}/server.json for local clients. */
export interface ServerInfo {
  url: string;
  pid: number;
  nodeId: string;
  /** PEM file of the CA that signed the server's certificate, when TLS is on. */
  ca?: string;
  adminTokenFile?: string;
  startedAt: string;
}

export interface ClientFlags {
  server?: string;
  token?: string;
  "token-file"?: string;
  ca?: string;
  "data-dir"?: string;
  config?: string;
}

export interface ClientOptions {
  server: string;
  token?: string;
  /** PEM text of a CA to trust. */
  ca?: string;
  /**
   * Where each value came from, for error messages ("--server", "server.json"...), and
   * the admin token file that was looked for when no token was found ("none").
   */
  sources: { server: string; token: string; adminFile?: string };
}

export const CLIENT_FLAG_OPTIONS = {
  server: { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  ca: { type: "string" },
  "data-dir": { type: "string" },
  config: { type: "string" },
} as const;

export const CLIENT_FLAGS_HELP = `Connection options (every client command):
  --server URL        the colony server (default: $COLONY_SERVER, the data dir's server.json,
                      or http://127.0.0.1:7777)
  --token TOKEN       an API token (default: $COLONY_TOKEN, --token-file / $COLONY_TOKEN_FILE,
                      or the admin token a local server wrote in its data dir)
  --ca FILE           a CA certificate to trust for https (default: $COLONY_CA)
  --data-dir DIR      the local server's data dir (default: $COLONY_DATA_DIR, data_dir of
                      --config, or ./.colony)
  --config FILE       the local server's colony.yaml: its data dir, host and port
                      (default: $COLONY_CONFIG)`;

function readServerInfo(dataDir: string): ServerInfo | undefined {
  const file = join(dataDir, SERVER_INFO_FILE);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, "utf8")) as ServerInfo;
  } catch {
    return undefined;
  }
}

/** Where a server started with this config listens, as seen from this machine. */
function configuredUrl(config: Config): string {
  const host = ["0.0.0.0", "::", ""].includes(config.host) ? "127.0.0.1" : config.host;
  const name = host.includes(":") ? `[${host}]` : host;
  return `${config.tls ? "https" : "http"}://${name}:${config.port}`;
}

function readToken(file: string): string {
  return readFileSync(file, "utf8").trim();
}

export async function resolveClientOptions(
  flags: ClientFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ClientOptions> {
  const configFile = flags.config ?? (env.COLONY_CONFIG || undefined);
  // The config module (its schema, typebox and yaml) is loaded only when there is a file
  // to read: it was ~0.3 s of every client command's start.
  const config = configFile
    ? (await import("../config/config.ts")).loadConfig({
        file: configFile,
        env,
        overrides: flags["data-dir"] ? { dataDir: flags["data-dir"] } : {},
      })
    : undefined;
  // An empty $COLONY_DATA_DIR is unset, as for the server (not the current directory).
  const dataDir =
    config?.dataDir ?? resolve(flags["data-dir"] ?? (env.COLONY_DATA_DIR || ".colony"));
  const info = readServerInfo(dataDir);
  let server = "http://127.0.0.1:7777";
  let serverSource = "default";
  if (flags.server) [server, serverSource] = [flags.server, "--server"];
  else if (env.COLONY_SERVER) [server, serverSource] = [env.COLONY_SERVER, "$COLONY_SERVER"];
  else if (info?.url) [server, serverSource] = [info.url, join(dataDir, SERVER_INFO_FILE)];
  else if (config) [server, serverSource] = [configuredUrl(config), resolve(configFile!)];

  let token: string | undefined;
  let tokenSource = "none";
  const tokenFile = flags["token-file"] ?? env.COLONY_TOKEN_FILE;
  const adminFile =
    info?.adminTokenFile ?? config?.auth.adminTokenFile ?? join(dataDir, ADMIN_TOKEN_FILE);
  if (flags.token) [token, tokenSource] = [flags.token, "--token"];
  else if (env.COLONY_TOKEN) [token, tokenSource] = [env.COLONY_TOKEN, "$COLONY_TOKEN"];
  else if (tokenFile) [token, tokenSource] = [readToken(tokenFile), tokenFile];
  else if (existsSync(adminFile)) {
    try {
      [token, tokenSource] = [readToken(adminFile), adminFile];
    } catch {
      // unreadable (another user's server): go on without a token and let the server say 401
    }
  }

  const caFile = flags.ca ?? env.COLONY_CA ?? info?.ca;
  const ca = caFile ? readFileSync(caFile, "utf8") : undefined;
  return {
    server: server.replace(/\/+$/, ""),
    token,
    ca,
    sources: {
      server: serverSource,
      token: tokenSource,
      ...(tokenSource === "none" ? { adminFile } : {}),
    },
  };
}
