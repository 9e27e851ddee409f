/**
 * `colony work submit|list|status|results|cancel|release`: the receptorctl verbs, over
 * the node's control socket (SPEC section 12), with the same semantics: `submit` sends
 * the payload and answers "Job Started" with the unit id (`-f` follows its output),
 * `results` streams the output until the unit ends and exits 1 if it failed.
 */
import { createReadStream } from "node:fs";
import { parseFlags } from "./flags.ts";
import { loadConfig } from "../config/config.ts";
import { ControlClient, ControlError } from "../units/control-client.ts";
import { STD_IO, type CliIo } from "./client-command.ts";
import { table, UsageError } from "./output.ts";

export const WORK_HELP = `Usage: colony work <submit|list|status|results|cancel|release> [options]

Work units of a colony node, over its control socket (the protocol receptorctl speaks:
'receptorctl --socket {data dir}/control.sock work ...' works too). See docs/units.md.

  colony work submit WORK_TYPE [PARAMS...] [options]
      -p, --payload FILE      the unit's stdin from FILE ('-': this command's stdin)
      -l, --payload-literal T the unit's stdin is T and a newline
      -n, --no-payload        an empty stdin (the default)
      --node NODE             run it on peer NODE (its unit streams back here)
      -a, --param K=V         a parameter (repeatable); PARAMS are appended to 'params'
      --ttl DURATION          remote work: fail unless it starts within DURATION
      --signwork              remote work: sign it with this node's work_signing key
      -f, --follow            print its output until it ends (exit 1 if it failed)
      --rm                    release it afterwards (with --follow)
  colony work list [-q] [UNIT_ID]      units: id, state, work type, node, size, detail
  colony work status UNIT_ID           one unit's status (receptor's JSON)
  colony work results UNIT_ID [--offset N]
                                       its output from byte N, until it ends
  colony work cancel UNIT_ID...        stop units (remote: on the peer too)
  colony work release [--force] [--all] UNIT_ID...
                                       cancel and delete units (--force: delete here
                                       even if the peer cannot be reached)

Options:
  --socket ADDR    the control socket: a path, unix:PATH or tls://HOST:PORT
                   (default: $COLONY_CONTROL_SOCKET, control_socket of --config, or
                   {data dir}/control.sock)
  --config FILE    the node's colony.yaml (default: $COLONY_CONFIG)
  --data-dir DIR   the node's data dir (default: $COLONY_DATA_DIR or ./.colony)
  --ca, --cert, --key FILE
                   for tls:// sockets: the CA to trust, the client certificate and key
  --json           print receptor's JSON
  -h, --help       this help

Examples:
  colony work submit echoint --no-payload
  echo -e "hi\\ni am foo" | colony work submit echopayload --node bar -p - -f
  colony work list
  colony work release --force 87Vwqb6A`;

const CONNECTION = {
  socket: { type: "string" },
  config: { type: "string" },
  "data-dir": { type: "string" },
  ca: { type: "string" },
  cert: { type: "string" },
  key: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

interface ConnectionFlags {
  socket?: string;
  config?: string;
  "data-dir"?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

export interface WorkIo extends CliIo {
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
}

const DEFAULT_IO: WorkIo = { ...STD_IO, stdin: process.stdin, env: process.env };

/** Where the control socket is, from the flags, the environment and the config. */
export function controlAddress(flags: ConnectionFlags, env: NodeJS.ProcessEnv): string {
  if (flags.socket) return flags.socket;
  if (env.COLONY_CONTROL_SOCKET && !flags.config && !flags["data-dir"]) {
    return env.COLONY_CONTROL_SOCKET;
  }
  const config = loadConfig({
    file: flags.config ?? (env.COLONY_CONFIG || undefined),
    env,
    overrides: flags["data-dir"] ? { dataDir: flags["data-dir"] } : {},
  });
  return config.controlSocket;
}

async function connect(flags: ConnectionFlags, io: WorkIo): Promise<ControlClient> {
  const options = {
    ...(flags.ca ? { ca: flags.ca } : {}),
    ...(flags.cert ? { cert: flags.cert } : {}),
    ...(flags.key ? { key: flags.key } : {}),
  };
  return ControlClient.connect(controlAddress(flags, io.env), options);
}

export async function workCommand(argv: string[], io: WorkIo = DEFAULT_IO): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "-h" || sub === "--help" || sub === "help") {
    io.stdout.write(WORK_HELP + "\n");
    return sub ? 0 : 2;
  }
  const handlers: Record<string, (a: string[], io: WorkIo) => Promise<number>> = {
    submit,
    list,
    ls: list,
    status,
    results,
    cancel: (a, i) => cancelOrRelease("cancel", a, i),
    release: (a, i) => cancelOrRelease("release", a, i),
  };
  const handler = handlers[sub];
  if (!handler) {
    throw new UsageError(
      `unknown subcommand '${sub}'; use submit, list, status, results, cancel or release`,
    );
  }
  try {
    return await handler(rest, io);
  } catch (error) {
    if (error instanceof ControlError) {
      io.stderr.write(`colony work ${sub}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

async function submit(argv: string[], io: WorkIo): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      ...CONNECTION,
      payload: { type: "string", short: "p" },
      "payload-literal": { type: "string", short: "l" },
      "no-payload": { type: "boolean", short: "n" },
      node: { type: "string" },
      param: { type: "string", short: "a", multiple: true },
      ttl: { type: "string" },
      signwork: { type: "boolean" },
      follow: { type: "boolean", short: "f" },
      rm: { type: "boolean" },
    },
  });
  if (values.help) {
    io.stdout.write(WORK_HELP + "\n");
    return 0;
  }
  const [workType, ...cmdParams] = positionals;
  if (!workType) throw new UsageError("work submit needs a work type");
  const sources = [values.payload, values["payload-literal"], values["no-payload"]].filter(
    (v) => v !== undefined && v !== false,
  );
  if (sources.length > 1) {
    throw new UsageError("give only one of --payload, --payload-literal and --no-payload");
  }
  const request: Record<string, string> = {
    node: values.node || "localhost",
    worktype: workType,
  };
  for (const kv of values.param ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`--param must be KEY=VALUE, got '${kv}'`);
    const key = kv.slice(0, eq);
    if (key in request || ["command", "subcommand", "ttl", "signwork"].includes(key)) {
      throw new UsageError(`duplicate or reserved parameter '${key}'`);
    }
    request[key] = kv.slice(eq + 1);
  }
  if (cmdParams.length > 0) {
    request.params = [request.params, ...cmdParams].filter((p) => p !== undefined).join(" ");
  }
  if (values.ttl) request.ttl = values.ttl;
  if (values.signwork) request.signwork = "true";
  let payload: Buffer | AsyncIterable<Buffer> | undefined;
  if (values["payload-literal"] !== undefined) {
    payload = Buffer.from(`${values["payload-literal"]}\n`);
  } else if (values.payload === "-") {
    payload = io.stdin as AsyncIterable<Buffer>;
  } else if (values.payload !== undefined) {
    payload = createReadStream(values.payload);
  }
  const client = await connect(values, io);
  const answer = await client.submit(request, payload);
  let code = 0;
  try {
    if (values.follow) {
      code = await followResults(values, answer.unitid, 0, io);
    } else if (values.json) {
      io.stdout.write(JSON.stringify(answer, null, 2) + "\n");
    } else {
      io.stdout.write(`Result: ${answer.result}\nUnit ID: ${answer.unitid}\n`);
    }
  } finally {
    if (values.rm) {
      const c = await connect(values, io);
      try {
        await c.command(`work release ${answer.unitid}`);
      } finally {
        c.close();
      }
    }
  }
  return code;
}

/** Streams a unit's output to stdout; 1 when the unit ended Failed. */
async function followResults(
  flags: ConnectionFlags,
  id: string,
  offset: number,
  io: WorkIo,
): Promise<number> {
  const client = await connect(flags, io);
  const stream = await client.results(id, offset);
  const watch = watchPending(flags, id, io);
  try {
    for await (const chunk of stream) {
      if (!io.stdout.write(chunk as Buffer)) {
        await new Promise((resolve) => io.stdout.once("drain", resolve));
      }
    }
  } finally {
    clearInterval(watch);
  }
  const after = await connect(flags, io);
  try {
    const status = await after.command(`work status ${id}`);
    if (status.State === 3) {
      io.stderr.write(`colony work: unit ${id} failed: ${String(status.Detail)}\n`);
      return 1;
    }
    return 0;
  } finally {
    after.close();
  }
}

/**
 * While a followed unit is Pending (remote work its peer has not taken yet: the peer is
 * down, say), says why on stderr, once per reason, so `-f` is not silent: "Pending:
 * waiting to submit: cannot reach bar (...)". The unit keeps trying either way.
 */
function watchPending(flags: ConnectionFlags, id: string, io: WorkIo): NodeJS.Timeout {
  let said = "";
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      const c = await connect(flags, io);
      try {
        const status = await c.command(`work status ${id}`);
        // "...; retrying in 7.6s" changes at every try: the reason is what comes before.
        const why = String(status.Detail ?? "").replace(/; retrying in [^;]*$/, "");
        if (status.State === 0 && why !== "" && why !== said) {
          said = why;
          io.stderr.write(
            `colony work: unit ${id} is pending: ${why}; it keeps trying (colony work cancel ${id} stops it)\n`,
          );
        }
      } finally {
        c.close();
      }
    })()
      .catch(() => undefined) // the results stream reports a lost control service
      .finally(() => (busy = false));
  }, 1000);
  timer.unref();
  return timer;
}

async function list(argv: string[], io: WorkIo): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: { ...CONNECTION, quiet: { type: "boolean", short: "q" } },
  });
  if (values.help) {
    io.stdout.write(WORK_HELP + "\n");
    return 0;
  }
  const client = await connect(values, io);
  let units: Record<string, Record<string, unknown>>;
  try {
    units = (await client.command(
      positionals[0] ? `work list ${positionals[0]}` : "work list",
    )) as Record<string, Record<string, unknown>>;
  } finally {
    client.close();
  }
  if (values.json) {
    io.stdout.write(JSON.stringify(units, null, 2) + "\n");
  } else if (values.quiet) {
    for (const id of Object.keys(units)) io.stdout.write(`${id}\n`);
  } else {
    const rows = Object.entries(units).map(([id, s]) => {
      const extra = s.ExtraData as { RemoteNode?: string; RemoteWorkType?: string } | null;
      const type = extra?.RemoteNode
        ? `${String(extra.RemoteWorkType)}@${extra.RemoteNode}`
        : String(s.WorkType);
      return [id, String(s.StateName), type, String(s.StdoutSize), String(s.Detail)];
    });
    io.stdout.write(table(rows, ["UNIT", "STATE", "WORK TYPE", "STDOUT", "DETAIL"]) + "\n");
  }
  return 0;
}

async function status(argv: string[], io: WorkIo): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: CONNECTION,
  });
  if (values.help || !positionals[0]) {
    if (!values.help) throw new UsageError("work status needs a unit id");
    io.stdout.write(WORK_HELP + "\n");
    return 0;
  }
  const client = await connect(values, io);
  try {
    const answer = await client.command(`work status ${positionals[0]}`);
    io.stdout.write(JSON.stringify(answer, null, 2) + "\n");
  } finally {
    client.close();
  }
  return 0;
}

async function results(argv: string[], io: WorkIo): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: { ...CONNECTION, offset: { type: "string" } },
  });
  if (values.help) {
    io.stdout.write(WORK_HELP + "\n");
    return 0;
  }
  if (!positionals[0]) throw new UsageError("work results needs a unit id");
  const offset = values.offset === undefined ? 0 : Number(values.offset);
  if (!Number.isInteger(offset) || offset < 0) {
    throw new UsageError(`--offset must be a byte position, got '${values.offset}'`);
  }
  return followResults(values, positionals[0], offset, io);
}

async function cancelOrRelease(
  verb: "cancel" | "release",
  argv: string[],
  io: WorkIo,
): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      ...CONNECTION,
      ...(verb === "release"
        ? { force: { type: "boolean" as const }, all: { type: "boolean" as const } }
        : {}),
    },
  });
  if (values.help) {
    io.stdout.write(WORK_HELP + "\n");
    return 0;
  }
  const flags = values as typeof values & { force?: boolean; all?: boolean };
  let ids = positionals;
  if (flags.all) {
    const c = await connect(values, io);
    try {
      ids = Object.keys(await c.command("work list"));
    } finally {
      c.close();
    }
  }
  if (ids.length === 0)
    throw new UsageError(`work ${verb} needs unit ids${verb === "release" ? " (or --all)" : ""}`);
  const op = verb === "release" && flags.force ? "force-release" : verb;
  const client = await connect(values, io);
  let failed = 0;
  try {
    for (const id of ids) {
      try {
        const answer = await client.command(`work ${op} ${id}`);
        const [result] = Object.keys(answer);
        io.stdout.write(values.json ? JSON.stringify(answer) + "\n" : `${id} ${result}\n`);
      } catch (error) {
        if (!(error instanceof ControlError)) throw error;
        io.stderr.write(`colony work ${verb}: ${id}: ${error.message}\n`);
        failed++;
      }
    }
  } finally {
    client.close();
  }
  return failed > 0 ? 1 : 0;
}
