/**
 * `colony ants list`: the ants of a server (the built-in one and the remote ones) with
 * their load, capacity, tags, methods and when they were last seen, and the tasks
 * waiting for an ant.
 */
import { HTTP_METHODS } from "../executors/http/http-executor.ts";
import { CLIENT_FLAGS_HELP } from "./client-options.ts";
import {
  ago,
  parseClientArgs,
  printJson,
  STD_IO,
  subcommands,
  withClient,
  type CliIo,
} from "./client-command.ts";
import { count, paint, table } from "./output.ts";

export const ANTS_HELP = `Usage: colony ants list [options]

The ants of a colony server: the built-in one (this server's executors) and every
remote ant connected to /ws/ants ('colony ant' agents and custom workers), with their
load, capacity, tags, methods and last sign of life; then the tasks waiting for an ant
that qualifies (method and every tag) and has room. A job whose first task (or, once
started, its next task) no ant serves at all is left PENDING ("job left PENDING"; UNIT
'-' when its task is not created yet) and tried again when an ant connects, or after a
back-off of up to 30 s. Needs a reader token.

Options:
  --json              print the server's JSON
  -h, --help          this help

${CLIENT_FLAGS_HELP}`;

export function antsCommand(argv: string[], io: CliIo = STD_IO): Promise<number> {
  return subcommands(
    "ants",
    argv,
    ANTS_HELP,
    { list: (a) => list(a, io), ls: (a) => list(a, io) },
    io,
  );
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseClientArgs(argv, {});
  if (values.help) {
    io.stdout.write(ANTS_HELP + "\n");
    return 0;
  }
  return withClient("ants list", values, io, async (client) => {
    const ants = await client.listAnts();
    if (values.json) {
      printJson(io, ants);
      return 0;
    }
    const p = paint(io.stdout);
    const rows = ants.items.map((a) => [
      a.ant_id,
      a.kind === "builtin" ? "built-in" : a.agent ? "agent" : "worker",
      a.state === "connected" ? p.green(a.state) : p.yellow(a.state),
      `${a.load}/${a.max_capacity ?? "-"}`,
      a.tags.join(",") || "-",
      methodsText(a.methods),
      a.kind === "builtin" ? "-" : ago(a.last_seen_at),
      a.remote_address ?? "-",
    ]);
    io.stdout.write(
      table(rows, ["ANT", "KIND", "STATE", "LOAD", "TAGS", "METHODS", "LAST SEEN", "ADDRESS"]) +
        "\n",
    );
    if (ants.waiting.length > 0) {
      const shown =
        ants.waiting_total > ants.waiting.length
          ? ` (the oldest ${ants.waiting.length} shown)`
          : "";
      io.stdout.write(`\n${count(ants.waiting_total, "task")} waiting for an ant${shown}:\n`);
      io.stdout.write(
        table(
          ants.waiting.map((w) => [
            String(w.job_request_id),
            w.execution_id ?? "-",
            w.task_type,
            w.method,
            w.tags.join(",") || "-",
            ago(w.since),
            w.left_pending
              ? "no connected ant serves it (job left PENDING)"
              : w.reason === "no_ant"
                ? "no connected ant serves it"
                : w.reason === "reconnect"
                  ? "an agent may hold it: waiting for agents to reconnect"
                  : "every ant for it is full",
          ]),
          ["JOB", "UNIT", "TASK", "METHOD", "TAGS", "SINCE", "WHY"],
        ) + "\n",
      );
    }
    return 0;
  });
}

/** The methods, with the six HTTP_* ones as "HTTP_*" when an ant has them all (a narrower table). */
function methodsText(methods: readonly string[]): string {
  const http = methods.filter((m) => m.startsWith("HTTP_"));
  if (http.length < HTTP_METHODS.length) return methods.join(",");
  const first = methods.indexOf(http[0]!);
  const rest = methods.filter((m) => !m.startsWith("HTTP_"));
  return [...rest.slice(0, first), "HTTP_*", ...rest.slice(first)].join(",");
}
