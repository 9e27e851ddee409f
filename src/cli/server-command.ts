/**
 * `colony server`: the long-running server (REST API, engine, store) until SIGTERM or
 * Ctrl-C, which stop it gracefully; a second signal quits at once.
 */
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { resolve } from "node:path";
import { parseFlags } from "./flags.ts";
import { loadConfig, type ConfigOverrides } from "../config/config.ts";
import { formatDuration } from "../core/duration.ts";
import { startServer, type RunningServer } from "../server/server.ts";
import { paint, UsageError } from "./output.ts";

export const SERVER_HELP = `Usage: colony server [options]

Runs the colony server: the REST API (/api, OpenAPI at /api/openapi.json), the process
jobs API (/jobs), the dashboard (/), Prometheus metrics (/metrics), the scheduler and
the store, until stopped. It prints the URL it listens on, a one-time login link for the
dashboard, and where the admin token is.

Auth is on by default. On first start the server makes an admin token and writes it to
{data dir}/admin.token (mode 0600); the colony CLI on this machine finds it there, and
'colony token create --role reader|writer|admin|ant' makes more. Requests without a
valid token get 401, with too low a role 403.

Options:
  --config FILE        colony.yaml to read (default: $COLONY_CONFIG; see docs/config.md)
  --data-dir DIR       state, task output, admin token, server.json
                       (default: $COLONY_DATA_DIR, data_dir in the config, or ./.colony)
  --port N             port to listen on; 0 picks a free one (default 7777)
  --host HOST          address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --store URL          postgres://user:pass@host/db to share work with other servers, or
                       sqlite:path/to/file.db (default: SQLite at {data dir}/colony.db)
  --tls-cert FILE      serve https with this certificate (PEM; with --tls-key)
  --tls-key FILE       the certificate's private key (PEM)
  --tls-client-ca FILE require client certificates signed by this CA (mutual TLS); a
                       certificate's CN may stand for a role (tls.client_cn_roles)
  --insecure-no-auth   switch auth off: anyone who can reach the port can run any
                       command as this user. Only for experiments on a private machine.
  --log                log every request (JSON lines on stdout)
  -h, --help           this help

Environment: COLONY_CONFIG, COLONY_DATA_DIR, COLONY_PORT, COLONY_HOST, COLONY_STORE_URL,
COLONY_BASE_URL, COLONY_ADVERTISE_URL, COLONY_NODE_ID (flags win over the environment,
which wins over the file).

Stopping: SIGTERM or Ctrl-C stops accepting requests, lets running tasks finish for up to
shutdown_grace (default 10s), and leaves the rest to the next start, which re-attaches
to them: nothing accepted is lost. A second signal quits at once. kill -9 loses nothing
either: the next start recovers every job.

Examples:
  colony server --data-dir ./data
  colony server --port 8443 --tls-cert server.pem --tls-key server.key
  colony server --store postgres://colony:secret@db.internal/colony --host 0.0.0.0`;

export interface ServerIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export async function serverCommand(
  argv: string[],
  io: ServerIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      "data-dir": { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      store: { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-client-ca": { type: "string" },
      "insecure-no-auth": { type: "boolean" },
      log: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.stdout.write(SERVER_HELP + "\n");
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(
      `unexpected argument '${positionals[0]}'; colony server takes only options (see colony server --help)`,
    );
  }
  let port: number | undefined;
  if (values.port !== undefined) {
    port = Number(values.port);
    if (!/^\d+$/.test(values.port) || port > 65535) {
      throw new UsageError(`--port must be a number from 0 to 65535, got '${values.port}'`);
    }
  }
  const overrides: ConfigOverrides = {
    dataDir: values["data-dir"],
    port,
    host: values.host,
    storeUrl: values.store,
    insecureNoAuth: values["insecure-no-auth"],
    tlsCert: values["tls-cert"],
    tlsKey: values["tls-key"],
    tlsClientCa: values["tls-client-ca"],
  };
  const config = loadConfig({
    file: values.config ?? (io.env.COLONY_CONFIG || undefined),
    env: io.env,
    overrides,
  });

  const err = paint(io.stderr);
  const server = await startServer(config, { logger: values.log ?? false });
  // Before the first line that says the server is up: a SIGTERM sent on seeing it must
  // find the handler (without one, Node dies of the signal: no shutdown, exit code null).
  const stopped = waitForSignals(server, config.shutdownGraceMs, io);
  const c = paint(io.stdout);
  const wildcard = ["0.0.0.0", "::", "[::]", ""].includes(config.host);
  io.stdout.write(
    `colony server listening on ${c.bold(server.url)}${wildcard ? ` (and every other address: --host ${config.host || "''"})` : ""}\n`,
  );
  if (server.baseUrl !== server.url) io.stdout.write(`base URL: ${server.baseUrl}\n`);
  io.stdout.write(
    `data dir: ${config.dataDir} (store: ${server.runtime.store.kind}, node: ${config.nodeId})\n`,
  );
  if (server.loginUrl) {
    io.stdout.write(
      config.auth.enabled
        ? `dashboard: ${c.bold(server.loginUrl)} (one-time login link, valid 10 minutes)\n`
        : `dashboard: ${c.bold(server.loginUrl)}\n`,
    );
  }
  if (!config.auth.enabled) {
    const port = new URL(server.url).port;
    const who = wildcard
      ? `port ${port} on any address of this machine (possibly the whole network)`
      : `${server.url.replace(/^\w+:\/\//, "")} (any user or program on ${isLoopback(config.host) ? "this machine" : "that network"})`;
    io.stderr.write(
      err.red(
        err.bold(
          `WARNING: authentication is OFF (--insecure-no-auth). Anyone who can reach ${who} ` +
            `can run any command as user '${userInfo().username}'. Use it only for local experiments.`,
        ),
      ) + "\n",
    );
  } else if (server.adminTokenFile) {
    const file = server.adminTokenFile;
    if (server.adminTokenCreated) {
      io.stdout.write(
        `admin token: ${file} (created now, mode 0600; ${howClientsFindIt(config.dataDir)})\n`,
      );
    } else if (existsSync(file)) {
      io.stdout.write(`admin token: ${file} (${howClientsFindIt(config.dataDir)})\n`);
    } else {
      io.stdout.write(
        `admin token: ${file} is missing, but the store has an admin token already; ` +
          `pass it with --token or $COLONY_TOKEN\n`,
      );
    }
  }
  if (config.tls?.clientCa) {
    io.stdout.write(`mutual TLS: client certificates must be signed by ${config.tls.clientCa}\n`);
  }

  return stopped;
}

/** Resolves with the exit code once a signal has stopped the server. */
function waitForSignals(server: RunningServer, graceMs: number, io: ServerIo): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        io.stderr.write(`colony server: ${signal} again, quitting at once\n`);
        process.exit(signal === "SIGINT" ? 130 : 143);
      }
      stopping = true;
      io.stderr.write(
        `colony server: ${signal}: stopping; running tasks get up to ${formatDuration(graceMs)} ` +
          `to finish (send ${signal} again to quit at once)\n`,
      );
      server.close({ graceMs }).then(
        () => {
          io.stderr.write("colony server: stopped\n");
          finish(0);
        },
        (error: unknown) => {
          io.stderr.write(`colony server: stopping failed: ${String(error)}\n`);
          finish(1);
        },
      );
    };
    const finish = (code: number) => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      // Work left to recovery may still hold timers: do not let them keep the process.
      setTimeout(() => process.exit(code), 1000).unref();
      resolve(code);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

/**
 * How the CLI on this machine finds the admin token: through the data dir (its
 * server.json names the token file), which client commands take from --data-dir or
 * $COLONY_DATA_DIR, else ./.colony of the directory they run in.
 */
export function howClientsFindIt(dataDir: string, cwd = process.cwd()): string {
  const flag = `--data-dir ${dataDir} or COLONY_DATA_DIR=${dataDir}`;
  return resolve(cwd, ".colony") === dataDir
    ? `colony commands run in ${cwd} use it as they are; from elsewhere, give ${flag}`
    : `colony commands on this machine use it when given ${flag}`;
}
