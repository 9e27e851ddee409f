/**
 * `colony ant`: runs this machine's share of the work as a remote ant of a colony
 * server (src/ants/ant-agent.ts), until SIGTERM or Ctrl-C.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseFlags } from "./flags.ts";
import { AntAgent } from "../ants/ant-agent.ts";
import { readExecutorSettings, type ExecutorSettings } from "../config/config.ts";
import { ensureDataDir } from "../core/disk.ts";
import { METHODS, type Method } from "../core/job-definition.ts";
import { HTTP_METHODS } from "../executors/http/http-executor.ts";
import { UsageError } from "./output.ts";

export const ANT_HELP = `Usage: colony ant --server URL --token TOKEN [options]

Connects this machine to a colony server as a remote ant: the server sends it the tasks
whose method it offers and whose tags it has all of (at most --max-capacity at once);
it runs them here with the same executors as the server (SHELL, HTTP_*, and DOCKER or
KUBERNETES when --methods names them), moves their artifacts and dependencies through
the server's job hook, streams their output back live, and reports each result. A
dropped connection is retried with back-off, and tasks keep running meanwhile: their
output and results are sent when it is back. See docs/ants.md.

Options:
  --server URL         the colony server, http(s)://host:7777 or ws(s)://host:7777
                       (default: $COLONY_SERVER)
  --token TOKEN        a token with role ant: colony token create --role ant
                       (default: $COLONY_TOKEN, or --token-file / $COLONY_TOKEN_FILE)
  --token-file FILE    read the token from FILE
  --tags a,b           this ant's tags (a task runs here only if it has all the task's tags)
  --methods M,N        methods to offer (default: SHELL and every HTTP_ method, which
                       HTTP_* also names; DOCKER and KUBERNETES run with this machine's
                       engine or cluster)
  --config FILE        colony.yaml whose docker:, kubernetes: and http: settings DOCKER,
                       KUBERNETES and HTTP tasks use (default: $COLONY_CONFIG; see
                       docs/config.md)
  --max-capacity N     tasks at once (default 1)
  --ant-id ID          how the server lists it (default: hostname-pid)
  --data-dir DIR       where task output is kept (default: $COLONY_DATA_DIR/ant or ./.colony-ant)
  --ca FILE            a CA certificate to trust for wss:// and the agent's artifact
                       transfers (default: $COLONY_CA)
  -h, --help           this help

Proxies: HTTPS_PROXY (wss://) or HTTP_PROXY (ws://) and NO_PROXY of the environment, as
curl reads them: the connection and the artifact transfers are tunnelled with CONNECT,
and HTTP tasks use them too.

Stopping: SIGTERM or Ctrl-C cancels the running tasks, reports them and disconnects.

Examples:
  colony ant --server ws://queen:7777 --token $ANT_TOKEN --tags linux,build \\
      --methods SHELL,HTTP_GET --max-capacity 4
  colony ant --server ws://queen:7777 --token $ANT_TOKEN --tags docker \\
      --methods SHELL,DOCKER --config /etc/colony/colony.yaml`;

function list(text: string | undefined): string[] {
  return (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export async function antCommand(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: "string" },
      token: { type: "string" },
      "token-file": { type: "string" },
      tags: { type: "string" },
      methods: { type: "string" },
      "max-capacity": { type: "string" },
      "ant-id": { type: "string" },
      "data-dir": { type: "string" },
      ca: { type: "string" },
      config: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(ANT_HELP + "\n");
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected '${positionals[0]}'`);
  const server = values.server ?? env.COLONY_SERVER;
  if (!server) throw new UsageError("give the server: --server ws://host:7777 (or $COLONY_SERVER)");
  const tokenFile = values["token-file"] ?? env.COLONY_TOKEN_FILE;
  const token =
    values.token ??
    env.COLONY_TOKEN ??
    (tokenFile ? readFileSync(tokenFile, "utf8").trim() : undefined);
  if (!token) {
    throw new UsageError("give a token with role ant: --token (colony token create --role ant)");
  }
  // HTTP_* is all six HTTP methods, as colony ants list writes them.
  const methods = list(values.methods).flatMap((m) => (m === "HTTP_*" ? [...HTTP_METHODS] : [m]));
  for (const m of methods) {
    if (!(METHODS as readonly string[]).includes(m)) {
      throw new UsageError(`--methods: unknown method '${m}'; methods are ${METHODS.join(", ")}`);
    }
  }
  const capacityText = values["max-capacity"] ?? "1";
  if (!/^[1-9][0-9]{0,4}$/.test(capacityText)) {
    throw new UsageError(`--max-capacity must be a whole number from 1, not '${capacityText}'`);
  }
  const caFile = values.ca ?? env.COLONY_CA;
  const dataDir = resolve(
    values["data-dir"] ?? (env.COLONY_DATA_DIR ? `${env.COLONY_DATA_DIR}/ant` : ".colony-ant"),
  );
  // Fail now, not at the first task, when task output could not be kept there.
  ensureDataDir(dataDir);
  const configFile = values.config ?? (env.COLONY_CONFIG || undefined);
  let settings: ExecutorSettings | undefined;
  if (configFile || methods.includes("DOCKER") || methods.includes("KUBERNETES")) {
    try {
      settings = readExecutorSettings(configFile, env);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  let agent: AntAgent;
  try {
    agent = new AntAgent({
      server,
      token,
      tags: list(values.tags),
      ...(methods.length > 0 ? { methods: methods as Method[] } : {}),
      maxCapacity: Number(capacityText),
      ...(values["ant-id"] ? { antId: values["ant-id"] } : {}),
      dataDir,
      ...(caFile ? { ca: readFileSync(caFile, "utf8") } : {}),
      ...(settings ? { containers: settings.containers } : {}),
      ...(settings?.httpTls ? { httpTls: settings.httpTls } : {}),
      log: (m) => process.stderr.write(`${m}\n`),
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const missing = await agent.unavailable();
  if (missing.length > 0) {
    await agent.close({ leaveRunning: true });
    throw new UsageError(
      `cannot offer ${missing.join(", ")} here: ${missing
        .map(
          (m) =>
            ({
              DOCKER:
                "no Docker engine answers (docker.host and its TLS keys in --config, or DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH; the reason is above)",
              KUBERNETES: "no Kubernetes API answers (kubernetes: in --config, or in-cluster)",
            })[m as string] ?? `${m} cannot run on this machine`,
        )
        .join("; ")}`,
    );
  }
  try {
    await agent.start();
  } catch (error) {
    process.stderr.write(`colony ant: ${(error as Error).message}\n`);
    await agent.close({ leaveRunning: true });
    return 1;
  }
  return new Promise((resolveExit) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) process.exit(signal === "SIGINT" ? 130 : 143);
      stopping = true;
      process.stderr.write(`colony ant: ${signal}: cancelling running tasks and disconnecting\n`);
      void agent.close().finally(() => {
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        setTimeout(() => process.exit(0), 1000).unref();
        resolveExit(0);
      });
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    // Only now: a SIGTERM sent on seeing this line must find the handler.
    process.stdout.write(
      `colony ant ${agent.antId} connected to ${server} (methods ${agent.methods.join(",")}; ` +
        `tags ${list(values.tags).join(",") || "none"}; max capacity ${capacityText}; output in ${dataDir})\n`,
    );
  });
}
