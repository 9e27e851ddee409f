/**
 * `colony definitions list|show|apply|delete|pause|resume`: the job types a server knows.
 */
import { readFileSync } from "node:fs";
import { ColonyClientError } from "../client/client.ts";
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
import { definitionErrorLine, paint, table, UsageError } from "./output.ts";

export const DEFINITIONS_HELP = `Usage: colony definitions <list|show|apply|delete|pause|resume> [options]

The job definitions (job types) saved on a colony server. 'colony submit JOB_TYPE' runs one.

  colony definitions list
      every saved type: version, tasks, paused, last change
  colony definitions show <type> [--yaml]
      its tasks and settings; --yaml prints the source as saved (secret values masked)
  colony definitions apply <file.yaml>...
      saves each file's definition (a new version when the type exists); the whole file
      is checked first and a refusal says file:line:column and what to fix
  colony definitions delete <type>
      removes the type (needs an admin token); submitted jobs keep their own copy
  colony definitions pause <type> | resume <type>
      a paused type refuses new submissions until resumed

Options:
  --json              print the server's JSON instead of tables
  -h, --help          this help

${CLIENT_FLAGS_HELP}

Examples:
  colony definitions apply examples/hello-dag.yaml
  colony definitions list
  colony definitions show hello-dag --yaml > hello-dag.yaml`;

export function definitionsCommand(argv: string[], io: CliIo = STD_IO): Promise<number> {
  return subcommands(
    "definitions",
    argv,
    DEFINITIONS_HELP,
    {
      list: (a) => list(a, io),
      ls: (a) => list(a, io),
      show: (a) => show(a, io),
      get: (a) => show(a, io),
      apply: (a) => apply(a, io),
      delete: (a) => remove(a, io),
      rm: (a) => remove(a, io),
      pause: (a) => pause(a, io, true),
      resume: (a) => pause(a, io, false),
    },
    io,
  );
}

function help(io: CliIo): number {
  io.stdout.write(DEFINITIONS_HELP + "\n");
  return 0;
}

function oneType(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError("give one job type");
  return positionals[0]!;
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  return withClient("definitions list", values, io, async (client) => {
    const items = await client.listDefinitions();
    if (values.json) {
      printJson(io, { items });
      return 0;
    }
    if (items.length === 0) {
      io.stderr.write("no definitions yet; save one with colony definitions apply <file.yaml>\n");
      return 0;
    }
    const rows = items.map((d) => [
      d.job_type,
      String(d.version),
      String(d.definition.tasks.length),
      d.paused ? paint(io.stdout).yellow("paused") : "",
      ago(d.updated_at),
      d.definition.description ?? "",
    ]);
    io.stdout.write(
      table(rows, ["TYPE", "VERSION", "TASKS", "PAUSED", "UPDATED", "DESCRIPTION"]) + "\n",
    );
    return 0;
  });
}

async function show(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, { yaml: { type: "boolean" } });
  if (values.help) return help(io);
  const jobType = oneType(positionals);
  return withClient("definitions show", values, io, async (client) => {
    if (values.yaml) {
      io.stdout.write(await client.getDefinitionSource(jobType));
      return 0;
    }
    const d = await client.getDefinition(jobType);
    if (values.json) {
      printJson(io, d);
      return 0;
    }
    const p = paint(io.stdout);
    const def = d.definition;
    const lines = [
      `${p.bold(d.job_type)} version ${d.version}${d.paused ? ` ${p.yellow("(paused)")}` : ""} · updated ${d.updated_at}`,
    ];
    if (def.description) lines.push(`  ${def.description}`);
    const settings = [
      def.timeout && `timeout ${def.timeout}`,
      def.retry && `retry ${def.retry}`,
      def.max_concurrency && `max_concurrency ${def.max_concurrency}`,
      def.cron_trigger && `cron ${def.cron_trigger}`,
    ].filter(Boolean);
    if (settings.length) lines.push(`  ${settings.join(" · ")}`);
    if (def.job_variables && Object.keys(def.job_variables).length)
      lines.push(`  variables ${Object.keys(def.job_variables).join(", ")}`);
    io.stdout.write(lines.join("\n") + "\n\n");
    const rows = def.tasks.map((t) => {
      const next = [
        ...(t.on_completed ?? []).map((n) => `ok→${n}`),
        ...(t.on_failed ?? []).map((n) => `fail→${n}`),
        ...(t.depends_on ?? []).map((n) => `after ${n}`),
      ];
      const flags = [t.always_run && "always_run", t.allow_failure && "allow_failure"].filter(
        Boolean,
      );
      return [t.task_type, t.method, next.join(" "), flags.join(" ")];
    });
    io.stdout.write(table(rows, ["TASK", "METHOD", "NEXT", "FLAGS"]) + "\n");
    return 0;
  });
}

async function apply(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  if (positionals.length === 0) throw new UsageError("give one or more definition files");
  const texts = positionals.map((file) => {
    try {
      return { file, text: readFileSync(file, "utf8") };
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
    }
  });
  return withClient("definitions apply", values, io, async (client) => {
    let code = 0;
    const saved = [];
    for (const { file, text } of texts) {
      try {
        const d = await client.saveDefinition(text);
        saved.push(d);
        if (!values.json)
          io.stdout.write(
            `${d.job_type}: ${d.version === 1 ? "created" : "updated"} (version ${d.version}) from ${file}\n`,
          );
      } catch (error) {
        if (!(error instanceof ColonyClientError) || error.code !== "COLONY_INVALID_DEFINITION")
          throw error;
        io.stderr.write(definitionErrorLine(file, error.message, error.details) + "\n");
        code = 2;
      }
    }
    if (values.json) printJson(io, { items: saved });
    return code;
  });
}

async function remove(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  const jobType = oneType(positionals);
  return withClient("definitions delete", values, io, async (client) => {
    await client.deleteDefinition(jobType);
    io.stdout.write(`${jobType}: deleted\n`);
    return 0;
  });
}

async function pause(argv: string[], io: CliIo, paused: boolean): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  const jobType = oneType(positionals);
  return withClient(`definitions ${paused ? "pause" : "resume"}`, values, io, async (client) => {
    const d = paused
      ? await client.pauseDefinition(jobType)
      : await client.resumeDefinition(jobType);
    if (values.json) printJson(io, d);
    else
      io.stdout.write(
        `${jobType}: ${paused ? "paused; submissions are refused until 'colony definitions resume'" : "resumed"}\n`,
      );
    return 0;
  });
}
