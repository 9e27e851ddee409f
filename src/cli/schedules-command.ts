/**
 * `colony schedules list|show|pause|resume`: the cron schedules of job types on a server
 * (docs/schedules.md). A schedule exists while its definition has a cron_trigger.
 */
import type { ScheduleView } from "../client/client.ts";
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
import { paint, table, UsageError } from "./output.ts";

export const SCHEDULES_HELP = `Usage: colony schedules <list|show|pause|resume> [options]

Job types that run on a cron_trigger. A schedule appears when a definition with a
cron_trigger is saved (colony definitions apply nightly.yaml) and goes with it.

  colony schedules list
      every schedule: cron, time zone, next and last firing, paused or not
  colony schedules show <job_type>
  colony schedules pause <job_type>
      nothing fires until it is resumed (submitting by hand still works)
  colony schedules resume <job_type>
      fires again from now on; times missed while paused do not fire

Options:
  --json              print the server's JSON
  -h, --help          this help

${CLIENT_FLAGS_HELP}

Examples:
  colony schedules list
  colony schedules pause nightly-report`;

export function schedulesCommand(argv: string[], io: CliIo = STD_IO): Promise<number> {
  return subcommands(
    "schedules",
    argv,
    SCHEDULES_HELP,
    {
      list: (a) => list(a, io),
      ls: (a) => list(a, io),
      show: (a) => change("show", a, io),
      get: (a) => change("show", a, io),
      pause: (a) => change("pause", a, io),
      resume: (a) => change("resume", a, io),
    },
    io,
  );
}

function help(io: CliIo): number {
  io.stdout.write(SCHEDULES_HELP + "\n");
  return 0;
}

function until(iso: string | null, now = Date.now()): string {
  if (!iso) return "-";
  const ms = Date.parse(iso) - now;
  if (ms <= 0) return "due";
  const s = Math.round(ms / 1000);
  if (s < 60) return `in ${s}s`;
  if (s < 3600) return `in ${Math.round(s / 60)}m`;
  if (s < 86_400) return `in ${Math.round(s / 360) / 10}h`;
  return `in ${Math.round(s / 8640) / 10}d`;
}

function rowsOf(out: NodeJS.WriteStream, items: ScheduleView[]): string {
  const p = paint(out);
  const rows = items.map((s) => [
    s.job_type,
    s.cron_trigger,
    s.timezone ?? "local",
    s.paused ? p.yellow("paused") : p.green("active"),
    s.paused ? "-" : `${s.next_fire_at ?? "-"} (${until(s.next_fire_at)})`,
    s.last_job_request_id === null ? "-" : `job ${s.last_job_request_id}, ${ago(s.last_fired_at)}`,
  ]);
  return table(rows, ["TYPE", "CRON", "ZONE", "STATE", "NEXT", "LAST"]);
}

async function list(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  if (positionals.length > 0) throw new UsageError(`unexpected '${positionals[0]}'`);
  return withClient("schedules list", values, io, async (client) => {
    const items = await client.listSchedules();
    if (values.json) printJson(io, { items });
    else if (items.length === 0)
      io.stderr.write("no schedules yet: give a job definition a cron_trigger and save it\n");
    else io.stdout.write(rowsOf(io.stdout, items) + "\n");
    return 0;
  });
}

async function change(
  action: "show" | "pause" | "resume",
  argv: string[],
  io: CliIo,
): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  const jobType = positionals[0];
  if (!jobType) throw new UsageError(`give the job type: colony schedules ${action} <job_type>`);
  if (positionals.length > 1) throw new UsageError(`unexpected '${positionals[1]}'`);
  return withClient(`schedules ${action}`, values, io, async (client) => {
    const s =
      action === "show"
        ? await client.getSchedule(jobType)
        : action === "pause"
          ? await client.pauseSchedule(jobType)
          : await client.resumeSchedule(jobType);
    if (values.json) printJson(io, s);
    else io.stdout.write(rowsOf(io.stdout, [s]) + "\n");
    return 0;
  });
}
