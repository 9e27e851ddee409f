/**
 * What every client command (submit, jobs, definitions, token) shares: the connection
 * flags, a client built from them (client-options.ts decides where server and token
 * come from), and one way to report failures: an unreachable server says so plainly,
 * a refusal gives the server's message and code, a 401/403 says which token was used.
 */
import { type ParseArgsOptionsConfig } from "node:util";
import { parseFlags } from "./flags.ts";
import { ColonyClientError, createClient, type ColonyClient } from "../client/client.ts";
import { formatDuration } from "../core/duration.ts";
import { CLIENT_FLAG_OPTIONS, resolveClientOptions, type ClientFlags } from "./client-options.ts";
import { paint, UsageError } from "./output.ts";

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

export const STD_IO: CliIo = { stdout: process.stdout, stderr: process.stderr };

export const COMMON_OPTIONS = {
  ...CLIENT_FLAG_OPTIONS,
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsOptionsConfig;

/** parseArgs with the connection flags, --json and --help added. */
export function parseClientArgs<O extends ParseArgsOptionsConfig>(argv: string[], options: O) {
  return parseFlags({
    args: argv,
    allowPositionals: true,
    options: { ...COMMON_OPTIONS, ...options },
  });
}

/** The token's origin, for 401/403 messages; set by withClient. */
let tokenSource = "none";
/** The admin token file looked for when there was no token; set by withClient. */
let adminFile: string | undefined;

/**
 * Runs a client command: builds the client from the flags, runs `fn`, closes the
 * client, and turns failures into messages and exit codes (1; 2 for bad input).
 */
export async function withClient(
  name: string,
  flags: ClientFlags,
  io: CliIo,
  fn: (client: ColonyClient) => Promise<number>,
): Promise<number> {
  let client: ColonyClient;
  try {
    const o = await resolveClientOptions(flags);
    tokenSource = o.sources.token;
    adminFile = o.sources.adminFile;
    client = createClient({ server: o.server, token: o.token, ca: o.ca, sources: o.sources });
  } catch (error) {
    if (error instanceof ColonyClientError) {
      io.stderr.write(`colony: ${error.message}\n`);
      return 2;
    }
    const e = error as NodeJS.ErrnoException;
    if (e.code === "ENOENT" || e.code === "EACCES") {
      io.stderr.write(`colony ${name}: cannot read ${e.path ?? "a file"}: ${e.message}\n`);
      return 2;
    }
    throw error;
  }
  try {
    return await fn(client);
  } catch (error) {
    if (!(error instanceof ColonyClientError)) throw error;
    io.stderr.write(describeFailure(name, error) + "\n");
    return error.status === 400 ? 2 : 1;
  } finally {
    client.close();
  }
}

export function describeFailure(name: string, error: ColonyClientError): string {
  if (error.status === 0) return `colony: ${error.message}`;
  let hint = "";
  if (error.status === 401)
    hint =
      tokenSource === "none"
        ? `; no token was sent${adminFile ? ` (there is no ${adminFile})` : ""}: pass --token, set COLONY_TOKEN, or, on the server's machine, give its data dir (--data-dir DIR or COLONY_DATA_DIR)`
        : ` (token from ${tokenSource})`;
  if (error.status === 403) hint = ` (token from ${tokenSource})`;
  return `colony ${name}: ${error.message}${hint} [${error.code}]`;
}

/** `colony <name> <sub>`: dispatches to a subcommand, with help for the group. */
export async function subcommands(
  name: string,
  argv: string[],
  help: string,
  table: Record<string, (argv: string[]) => Promise<number>>,
  io: CliIo,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === "-h" || sub === "--help" || sub === "help") {
    io.stdout.write(help + "\n");
    return sub ? 0 : 2;
  }
  const handler = table[sub];
  if (!handler) {
    throw new UsageError(
      `unknown subcommand '${sub}'; use one of ${Object.keys(table).join(", ")} (colony ${name} --help)`,
    );
  }
  return handler(rest);
}

export function parseId(text: string | undefined, what = "job request id"): number {
  if (text === undefined) throw new UsageError(`give a ${what}`);
  if (!/^[1-9][0-9]*$/.test(text)) throw new UsageError(`not a ${what}: '${text}'`);
  return Number(text);
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** A state in colour: green COMPLETED, red FAILED, yellow the rest. */
export function stateText(stream: NodeJS.WriteStream, state: string): string {
  const p = paint(stream);
  if (state === "COMPLETED" || state === "Succeeded") return p.green(state);
  if (state === "FAILED" || state === "Failed") return p.red(state);
  if (state === "CANCELLED" || state === "Canceled") return p.yellow(state);
  return state;
}

/** "3s ago"-style age of an ISO time, or "-". */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const ms = now - Date.parse(iso);
  if (ms < 0) return `in ${formatDuration(-ms)}`;
  if (ms < 1000) return "just now";
  if (ms < 60_000) return `${Math.floor(ms / 1000)}s ago`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m ago`;
  if (ms < 86_400_000) return `${Math.floor(ms / 3_600_000)}h ago`;
  return iso.slice(0, 10);
}

/** Time from start to end (or to now while running), or "-". */
export function took(start: string | null, end: string | null): string {
  if (!start) return "-";
  return formatDuration((end ? Date.parse(end) : Date.now()) - Date.parse(start));
}
