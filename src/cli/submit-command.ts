/**
 * `colony submit <job.yaml | JOB_TYPE>`: hands a job to a colony server. A file's
 * definition is saved first (as `colony definitions apply` does) and then submitted by
 * its type, so it shows in `colony definitions list` and can be submitted again by
 * name; `--follow` prints the job's output live until it ends.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { ColonyClientError } from "../client/client.ts";
import { parseJobDefinition } from "../core/definition-parser.ts";
import { DefinitionError } from "../core/errors.ts";
import { CLIENT_FLAGS_HELP } from "./client-options.ts";
import {
  describeFailure,
  parseClientArgs,
  printJson,
  STD_IO,
  stateText,
  withClient,
  type CliIo,
} from "./client-command.ts";
import { onInterrupt, printJob } from "./jobs-command.ts";
import { count, definitionErrorLine, paint, UsageError } from "./output.ts";
import { parseParams } from "./params.ts";
import { RemoteFollow } from "./remote-follow.ts";

export const SUBMIT_HELP = `Usage: colony submit <job.yaml | JOB_TYPE> [options]

Submits a job to a colony server and prints its id; with --follow, prints every task's
output live (each line prefixed by its task) with a progress line, until the job ends.

A file (YAML or JSON) is checked here, then saved as the definition of its job_type (a
new version if the type exists and the text changed, as 'colony definitions apply'
does), then that type is submitted: it shows in 'colony definitions list' and
'colony submit JOB_TYPE' runs it again. A name that is not a file submits the saved
definition of that job type.

Options:
  --param, -p KEY=VALUE   a request parameter for {{.KEY}} in the job (repeatable)
  --at TIME               run at this ISO 8601 time (e.g. 2030-01-02T15:04:05Z), not now
  --follow, -f            print the output live until the job ends; the exit code is then
                          0 only if the job COMPLETED (1 otherwise). Ctrl-C stops following
                          (the job goes on on the server)
  --quiet, -q             with --follow: only task states, no output
  --json                  print the job request as JSON (with --follow: the final one;
                          task output then goes to stderr)
  -h, --help              this help

${CLIENT_FLAGS_HELP}

Exit codes: 0 accepted (with --follow: COMPLETED); 1 refused, unreachable, or (with
--follow) the job FAILED or was CANCELLED; 2 bad usage or an invalid definition.

Examples:
  colony submit examples/hello-dag.yaml --follow
  colony submit hello-dag --param Name=world
  colony submit nightly-report --at 2030-01-02T03:00:00Z`;

export async function submitCommand(argv: string[], io: CliIo = STD_IO): Promise<number> {
  const { values, positionals } = parseClientArgs(argv, {
    param: { type: "string", short: "p", multiple: true },
    at: { type: "string" },
    follow: { type: "boolean", short: "f" },
    quiet: { type: "boolean", short: "q" },
  });
  if (values.help) {
    io.stdout.write(SUBMIT_HELP + "\n");
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError("give one job file or job type; see colony submit --help");
  const target = positionals[0]!;
  const params = parseParams(values.param ?? []);
  let scheduledAt: string | undefined;
  if (values.at !== undefined) {
    if (Number.isNaN(Date.parse(values.at)))
      throw new UsageError(
        `--at needs an ISO 8601 time like 2030-01-02T15:04:05Z, got '${values.at}'`,
      );
    scheduledAt = new Date(values.at).toISOString();
  }
  const isFile = existsSync(target) && statSync(target).isFile();
  if (!isFile && /\.(ya?ml|json)$/i.test(target)) throw new UsageError(`no such file: ${target}`);
  if (!isFile && existsSync(target)) {
    throw new UsageError(
      `${target} is a directory; give a job file (job.yaml) or a saved job type`,
    );
  }
  const text = isFile ? readFileSync(target, "utf8") : undefined;

  return withClient("submit", values, io, async (client) => {
    let jobType = target;
    if (text !== undefined) {
      const p = paint(io.stderr);
      let definition;
      try {
        definition = parseJobDefinition(text);
      } catch (error) {
        if (!(error instanceof DefinitionError)) throw error;
        io.stderr.write(definitionErrorLine(target, error.message, error.position) + "\n");
        return 2;
      }
      jobType = definition.jobType;
      // The same text saved again would only bump the version: keep the saved one.
      const current = await client.getDefinition(jobType).catch(() => undefined);
      const same =
        current !== undefined &&
        (await client.getDefinitionSource(jobType)).replace(/\n?$/, "\n") ===
          text.replace(/\n?$/, "\n");
      if (same) {
        io.stderr.write(
          p.dim(`colony: definition ${jobType} unchanged (version ${current.version})`) + "\n",
        );
      } else {
        const saved = await client.saveDefinition(text);
        io.stderr.write(
          p.dim(`colony: saved definition ${saved.job_type} (version ${saved.version})`) + "\n",
        );
      }
      if (definition.cronTrigger !== undefined) {
        io.stderr.write(
          p.dim(
            `colony: ${jobType} also runs on its cron_trigger '${definition.cronTrigger}' (colony schedules list)`,
          ) + "\n",
        );
      }
    }
    const job = await client.submit(jobType, { params, scheduledAt });
    const out = values.json ? io.stderr : io.stdout;
    if (!values.follow) {
      if (values.json) printJson(io, job);
      else
        io.stdout.write(
          `job ${job.id} (${job.job_type}) ${job.state}${when(scheduledAt)} · colony jobs show ${job.id} · colony jobs logs ${job.id} -f\n`,
        );
      return 0;
    }
    io.stderr.write(
      paint(io.stderr).dim(
        `colony: job ${job.id} (${job.job_type}) · ${count(job.task_types.length, "task")} · ${client.server}`,
      ) + "\n",
    );
    const follow = new RemoteFollow({
      client,
      jobRequestId: job.id,
      out,
      err: io.stderr,
      quiet: values.quiet ?? false,
    });
    const stop = onInterrupt(io, job.id, () => follow.stop());
    let final;
    try {
      final = await follow.run();
    } catch (error) {
      if (error instanceof ColonyClientError) {
        io.stderr.write(
          `${describeFailure("submit", error)}\ncolony: job ${job.id} was accepted; see it with colony jobs show ${job.id}\n`,
        );
        return 1;
      }
      throw error;
    } finally {
      stop();
    }
    const view = await client.getJobRequest(job.id);
    if (values.json) printJson(io, view);
    else {
      io.stderr.write("\n");
      printJob(io.stderr, view);
    }
    const took =
      view.started_at && view.ended_at
        ? ` in ${((Date.parse(view.ended_at) - Date.parse(view.started_at)) / 1000).toFixed(2)}s`
        : "";
    const why = view.error_message ? ` — ${view.error_message}` : "";
    io.stderr.write(
      `\njob ${view.id} (${view.job_type}) ${stateText(io.stderr, view.state)}${took}${why}\n`,
    );
    return final.state === "COMPLETED" ? 0 : 1;
  });
}

/** " until T" for a time to come; a past --at runs at once, and says so. */
function when(scheduledAt: string | undefined): string {
  if (!scheduledAt) return "";
  return Date.parse(scheduledAt) > Date.now()
    ? ` until ${scheduledAt}`
    : ` (${scheduledAt} is past: it runs now)`;
}
