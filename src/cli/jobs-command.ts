/**
 * `colony jobs list|show|cancel|restart|logs`: job requests on a server.
 */
import type { ColonyClient, JobRequestView } from "../client/client.ts";
import { isState, STATES } from "../core/states.ts";
import { CLIENT_FLAGS_HELP } from "./client-options.ts";
import {
  ago,
  parseClientArgs,
  parseId,
  printJson,
  STD_IO,
  stateText,
  subcommands,
  took,
  withClient,
  type CliIo,
} from "./client-command.ts";
import { paint, table, UsageError } from "./output.ts";
import { RemoteFollow } from "./remote-follow.ts";

export const JOBS_HELP = `Usage: colony jobs <list|show|cancel|restart|logs> [options]

Job requests on a colony server (see 'colony submit' to start one).

  colony jobs list [--state S[,S...]] [--type T] [--limit N] [--cursor C]
      newest first, 20 per page by default; prints the command for the next page
  colony jobs show <id>
      the request, its params and every task execution (state, tries, exit code, unit id)
  colony jobs cancel <id>
      stops its running tasks (always_run tasks still run); it ends CANCELLED
  colony jobs restart <id>
      runs a FAILED or CANCELLED request again as its next attempt
  colony jobs logs <id> [--task T] [-f]
      the output of every task of the latest run, each line prefixed by its task (every
      try of a retried task, each named on stderr); --task T prints that task's output,
      its latest try, as it is (no prefix, good for pipes);
      -f / --follow keeps printing until the job ends, then exits 0 only if it COMPLETED

Options:
  --json              print the server's JSON instead of tables
  -h, --help          this help

${CLIENT_FLAGS_HELP}

Examples:
  colony jobs list --state FAILED
  colony jobs show 42
  colony jobs logs 42 -f
  colony jobs logs 42 --task build > build.log`;

export function jobsCommand(argv: string[], io: CliIo = STD_IO): Promise<number> {
  return subcommands(
    "jobs",
    argv,
    JOBS_HELP,
    {
      list: (a) => listJobs(a, io),
      ls: (a) => listJobs(a, io),
      show: (a) => showJob(a, io),
      get: (a) => showJob(a, io),
      cancel: (a) => cancelJob(a, io),
      restart: (a) => restartJob(a, io),
      logs: (a) => jobLogs(a, io),
    },
    io,
  );
}

function help(io: CliIo): number {
  io.stdout.write(JOBS_HELP + "\n");
  return 0;
}

/** Why a PENDING job waits, when it says (COLONY_NO_ANT: no ant serves its first task). */
function waitNote(job: { state: string; error_code?: string | null }): string {
  if (job.state !== "PENDING" || !job.error_code) return "";
  return job.error_code === "COLONY_NO_ANT" ? " (no ant)" : ` (${job.error_code})`;
}

async function listJobs(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {
    state: { type: "string", multiple: true },
    type: { type: "string" },
    limit: { type: "string" },
    cursor: { type: "string" },
  });
  if (values.help) return help(io);
  if (positionals.length > 0) throw new UsageError(`unexpected '${positionals[0]}'`);
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500)
    throw new UsageError(`--limit must be 1..500, got '${values.limit}'`);
  for (const state of (values.state ?? []).flatMap((s) => s.split(","))) {
    if (!isState(state.trim().toUpperCase()))
      throw new UsageError(
        `--state: unknown state '${state}'; use one or more of ${STATES.join(", ")}`,
      );
  }
  return withClient("jobs list", values, io, async (client) => {
    const page = await client.listJobRequests({
      state: values.state?.join(","),
      jobType: values.type,
      limit,
      cursor: values.cursor,
    });
    if (values.json) {
      printJson(io, page);
      return 0;
    }
    if (page.items.length === 0) {
      io.stderr.write("no job requests" + (values.state || values.type ? " match" : " yet") + "\n");
      return 0;
    }
    const rows = page.items.map((j) => [
      String(j.id),
      j.job_type,
      stateText(io.stdout, j.state) + waitNote(j),
      String(j.attempt + 1),
      ago(j.created_at),
      took(j.started_at, j.ended_at),
      j.submitted_by ?? "-",
    ]);
    io.stdout.write(table(rows, ["ID", "TYPE", "STATE", "RUN", "CREATED", "TOOK", "BY"]) + "\n");
    if (page.next_cursor) {
      const again = [
        "colony jobs list",
        ...argvWithout(argv, "--cursor"),
        "--cursor",
        page.next_cursor,
      ];
      io.stderr.write(paint(io.stderr).dim(`more: ${again.join(" ")}`) + "\n");
    }
    return 0;
  });
}

function argvWithout(argv: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === flag) i++;
    else if (!a.startsWith(`${flag}=`)) out.push(a);
  }
  return out;
}

async function showJob(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  const id = parseId(positionals[0]);
  return withClient("jobs show", values, io, async (client) => {
    const job = await client.getJobRequest(id);
    if (values.json) printJson(io, job);
    else printJob(io.stdout, job);
    return 0;
  });
}

/** The request's header lines and its task table (every attempt). */
export function printJob(out: NodeJS.WriteStream, job: JobRequestView): void {
  const p = paint(out);
  const lines = [
    `${p.bold(`job ${job.id}`)} (${job.job_type}) ${stateText(out, job.state)}${job.attempt > 0 ? ` · run ${job.attempt + 1}` : ""}`,
    `  created ${job.created_at}${job.submitted_by ? ` by ${job.submitted_by}` : ""}; scheduled ${job.scheduled_at}`,
  ];
  if (job.started_at)
    lines.push(`  started ${job.started_at}; took ${took(job.started_at, job.ended_at)}`);
  if (Object.keys(job.params).length > 0) lines.push(`  params ${JSON.stringify(job.params)}`);
  if (job.error_message) {
    // PENDING with a code: it waits (e.g. COLONY_NO_ANT: no ant serves its first task yet).
    const paint = job.state === "PENDING" ? p.yellow : p.red;
    lines.push(`  ${paint(job.error_code ?? "error")}: ${job.error_message}`);
  }
  out.write(lines.join("\n") + "\n");
  const tasks = job.tasks ?? [];
  if (tasks.length === 0) {
    out.write(`\n  no task has started yet (tasks: ${job.task_types.join(", ")})\n`);
    return;
  }
  const several = tasks.some((t) => t.job_attempt > 0);
  const rows = tasks.map((t) => [
    ...(several ? [String(t.job_attempt + 1)] : []),
    t.task_type,
    stateText(out, t.state),
    String(t.attempt + 1),
    t.exit_code === null ? "-" : String(t.exit_code),
    took(t.started_at, t.ended_at),
    t.id,
    t.error_message ?? "",
  ]);
  out.write(
    "\n" +
      table(rows, [
        ...(several ? ["RUN"] : []),
        "TASK",
        "STATE",
        "TRY",
        "EXIT",
        "TIME",
        "UNIT",
        "NOTE",
      ]) +
      "\n",
  );
  // What processes reported through the job hook (docs/hook.md), when any did.
  for (const t of tasks.filter((t) => t.hook?.updated_at)) {
    const h = t.hook!;
    const details = h.status_details === null ? "" : ` ${JSON.stringify(h.status_details)}`;
    const error = h.error_message ? ` ${p.red(h.error_message)}` : "";
    out.write(`  hook ${t.task_type} (${t.id}): ${h.status}${details}${error}\n`);
  }
}

async function cancelJob(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  const id = parseId(positionals[0]);
  return withClient("jobs cancel", values, io, async (client) => {
    const job = await client.cancelJobRequest(id);
    if (values.json) printJson(io, job);
    else if (job.state === "CANCELLED") io.stdout.write(`job ${id} (${job.job_type}) CANCELLED\n`);
    else if (job.state === "COMPLETED" || job.state === "FAILED")
      io.stdout.write(
        `job ${id} (${job.job_type}) had already ended ${job.state}; nothing to cancel\n`,
      );
    else
      io.stdout.write(
        `job ${id} (${job.job_type}): cancel requested; its tasks are stopping (colony jobs show ${id})\n`,
      );
    return 0;
  });
}

async function restartJob(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {});
  if (values.help) return help(io);
  const id = parseId(positionals[0]);
  return withClient("jobs restart", values, io, async (client) => {
    const job = await client.restartJobRequest(id);
    if (values.json) printJson(io, job);
    else
      io.stdout.write(
        `job ${id} (${job.job_type}) restarted: run ${job.attempt + 1} is ${job.state} (colony jobs logs ${id} -f)\n`,
      );
    return 0;
  });
}

async function jobLogs(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {
    task: { type: "string" },
    follow: { type: "boolean", short: "f" },
  });
  if (values.help) return help(io);
  const id = parseId(positionals[0]);
  return withClient("jobs logs", values, io, async (client) => {
    if (values.task !== undefined) {
      if (values.follow) {
        // The task may not have started yet: wait for its first execution.
        for (;;) {
          const job = await client.getJobRequest(id);
          if ((job.tasks ?? []).some((t) => t.task_type === values.task)) break;
          if (["COMPLETED", "FAILED", "CANCELLED"].includes(job.state)) break;
          await new Promise((r) => setTimeout(r, 300));
        }
      }
      const stream = await client.taskOutput(id, values.task, { follow: values.follow ?? false });
      for await (const chunk of stream) io.stdout.write(chunk as Buffer);
      return 0;
    }
    if (values.follow) {
      const follow = new RemoteFollow({ client, jobRequestId: id, out: io.stdout, err: io.stderr });
      const stop = onInterrupt(io, id, () => follow.stop());
      try {
        const job = await follow.run();
        io.stderr.write(`job ${id} (${job.job_type}) ${stateText(io.stderr, job.state)}\n`);
        return job.state === "COMPLETED" ? 0 : 1;
      } finally {
        stop();
      }
    }
    await printAllOutput(client, id, io);
    return 0;
  });
}

/** Every task's output of the latest attempt, in start order, lines prefixed by task. */
async function printAllOutput(client: ColonyClient, id: number, io: CliIo): Promise<void> {
  const job = await client.getJobRequest(id);
  const tasks = (job.tasks ?? []).filter((t) => t.job_attempt === job.attempt);
  if (tasks.length === 0) {
    io.stderr.write(`job ${id} has no task output yet (${job.state})\n`);
    return;
  }
  const tries = new Map<string, number>();
  for (const t of tasks) tries.set(t.task_type, (tries.get(t.task_type) ?? 0) + 1);
  for (const t of tasks) {
    const prefix = `[${t.task_type}] `;
    // A task tried more than once: say which try each part of its output is (on stderr,
    // so stdout stays the output alone).
    if ((tries.get(t.task_type) ?? 0) > 1) {
      io.stderr.write(
        paint(io.stderr).dim(`${prefix}(attempt ${t.attempt + 1}, ${t.state})`) + "\n",
      );
    }
    let partial = "";
    for await (const chunk of await client.executionOutput(t.id)) {
      const lines = (partial + (chunk as Buffer).toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      if (lines.length) io.stdout.write(lines.map((l) => prefix + l + "\n").join(""));
    }
    if (partial) io.stdout.write(prefix + partial + "\n");
  }
}

/** Ctrl-C stops following only: the job keeps running on the server. */
export function onInterrupt(io: CliIo, id: number, stop: () => void): () => void {
  const handler = () => {
    io.stderr.write(
      `\ncolony: stopped following; job ${id} goes on on the server (colony jobs cancel ${id} stops it)\n`,
    );
    stop();
  };
  process.once("SIGINT", handler);
  return () => process.off("SIGINT", handler);
}
