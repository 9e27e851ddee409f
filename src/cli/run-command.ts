/**
 * `colony run job.yaml [--param k=v]...`: runs one job to its end on the embedded
 * default (SQLite in the data dir), printing task output live. Exit code 0 only when
 * the job COMPLETED. `colony run --resume [id]` finishes jobs a crashed run left behind.
 */
import { readFileSync } from "node:fs";
import { parseFlags } from "./flags.ts";
import type { ExecutorSettings } from "../config/config.ts";
import { ColonyError, DefinitionError } from "../core/errors.ts";
import { formatDuration } from "../core/duration.ts";
import { parseJobDefinition } from "../core/definition-parser.ts";
import type { JobRequest } from "../core/job-request.ts";
import { secretValues } from "../core/secrets.ts";
import { defaultDataDir, openEmbedded, type Embedded } from "../runtime/embedded.ts";
import { jobRequestView } from "../server/views.ts";
import { LiveOutput } from "./live-output.ts";
import { count, definitionErrorLine, paint, table, UsageError } from "./output.ts";
import { parseParams } from "./params.ts";

export const RUN_HELP = `Usage: colony run <job.yaml> [options]
       colony run --resume [<job-request-id>] [options]

Runs one job to its end on this machine, with no server: the job's state is kept in a
SQLite file in the data directory, every task's output streams here live (prefixed by
its task), and the exit code says whether the job completed.

Options:
  --param, -p KEY=VALUE   a request parameter for {{.KEY}} in the job (repeatable)
  --data-dir DIR          where state and task output live (default: $COLONY_DATA_DIR or ./.colony)
  --concurrency N         tasks running at once (default 16)
  --config FILE           colony.yaml whose docker:, kubernetes:, http: and messaging:
                          settings the job's DOCKER, KUBERNETES, HTTP and MESSAGING tasks
                          use (default: $COLONY_CONFIG; its other keys are the server's)
  --resume [ID]           finish jobs left unfinished by a run that crashed or was killed:
                          completed tasks are kept, running ones re-attached
  --json                  print the final job as JSON on stdout, as GET /api/job-requests/{id}
                          shows it (task output goes to stderr)
  --quiet, -q             do not print task output, only states and the summary
  -h, --help              this help

Exit codes: 0 the job COMPLETED; 1 it FAILED or was CANCELLED, or its store refused
writes for 30 s (a full disk: the job is left to 'colony run --resume'); 2 bad usage or
definition. Ctrl-C cancels the job (its always_run tasks still run); a second Ctrl-C
quits at once, leaving the job to 'colony run --resume'.

Examples:
  colony run examples/hello-dag.yaml
  colony run examples/hello-dag.yaml --param Name=world
  colony run --resume`;

interface RunIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

/**
 * How long `colony run` drives again a job its store keeps refusing (a full disk, most
 * often filled by the task's own output) before it stops with the store's error (exit
 * 1). The job stays as recorded; `colony run --resume` finishes it once there is room.
 */
export const RUN_GIVE_UP_MS = 30_000;

export async function runCommand(
  argv: string[],
  io: RunIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const { values, positionals } = parseFlags({
    args: argv,
    allowPositionals: true,
    options: {
      param: { type: "string", short: "p", multiple: true },
      "data-dir": { type: "string" },
      concurrency: { type: "string" },
      config: { type: "string" },
      resume: { type: "boolean" },
      json: { type: "boolean" },
      quiet: { type: "boolean", short: "q" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.stdout.write(RUN_HELP + "\n");
    return 0;
  }
  const dataDir = values["data-dir"] ?? defaultDataDir();
  const concurrency = values.concurrency === undefined ? undefined : Number(values.concurrency);
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new UsageError(`--concurrency must be a positive integer, got '${values.concurrency}'`);
  }
  if (!values.resume && positionals.length !== 1) {
    throw new UsageError(
      "colony run needs exactly one job file (or --resume); see colony run --help",
    );
  }
  const out = values.json ? io.stderr : io.stdout;
  const settings = await executorSettings(
    values.config ?? (process.env.COLONY_CONFIG || undefined),
  );

  let definition;
  let params: Record<string, string> = {};
  if (!values.resume) {
    const file = positionals[0]!;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EISDIR")
        throw new UsageError(`${file} is a directory; give a job file (job.yaml)`);
      if (code === "ENOENT") throw new UsageError(`no such file: ${file}`);
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
    }
    try {
      definition = parseJobDefinition(text);
    } catch (error) {
      if (error instanceof DefinitionError) {
        io.stderr.write(definitionErrorLine(file, error.message, error.position) + "\n");
        return 2;
      }
      throw error;
    }
    params = parseParams(values.param ?? []);
  }

  const runtime = await openEmbedded({
    lazyExecutors: true,
    warmShell: true,
    dataDir,
    maxParallelTasks: concurrency,
    ...settings,
    engine: {
      claim: !values.resume,
      log: (m) => io.stderr.write(`colony: ${m}\n`),
      giveUpAfterMs: RUN_GIVE_UP_MS,
    },
  });
  try {
    let jobs: JobRequest[];
    const lives: LiveOutput[] = [];
    if (values.resume) {
      const id = positionals[0] === undefined ? undefined : Number(positionals[0]);
      if (id !== undefined && !Number.isInteger(id))
        throw new UsageError(
          `--resume takes a job request id (or none: every unfinished job), not '${positionals[0]}'`,
        );
      jobs = await runtime.engine.recover(id);
      if (jobs.length === 0) {
        if (id !== undefined) {
          const job = await runtime.engine.getJob(id);
          return await report(runtime, [job], values.json ?? false, io);
        }
        io.stderr.write("colony: nothing to resume: no unfinished job whose runner is gone\n");
        return 0;
      }
      for (const job of jobs) {
        io.stderr.write(`colony: resuming job ${job.id} (${job.jobType}) in ${runtime.dataDir}\n`);
        const live = liveFor(runtime, job, out, io, values.quiet ?? false);
        for (const t of await runtime.store.listTaskExecutions(job.id)) {
          if (t.jobAttempt === job.attempt && (t.state === "STARTED" || t.state === "EXECUTING"))
            live.follow(t.id, t.taskType);
        }
        lives.push(live);
      }
    } else {
      const job = await runtime.engine.submit({
        definition: definition!,
        params,
        submittedBy: "colony run",
      });
      const p = paint(io.stderr);
      io.stderr.write(
        p.dim(
          `colony: job ${job.id} (${job.jobType}) · ${count(definition!.tasks.length, "task")} · data in ${runtime.dataDir}\n`,
        ),
      );
      lives.push(liveFor(runtime, job, out, io, values.quiet ?? false));
      jobs = [job];
      await runtime.engine.start();
    }
    const stopSignals = installInterrupt(runtime, jobs, io);
    const closeLives = () => Promise.all(lives.map((l) => l.close()));
    try {
      const finals = await Promise.all(jobs.map((j) => runtime.engine.waitFor(j.id)));
      await closeLives(); // all output printed before the summary
      return await report(runtime, finals, values.json ?? false, io);
    } finally {
      stopSignals();
      // Also when the wait failed (a store that kept refusing writes): an output follower
      // left open watches its file for ever, and the command never exited.
      await closeLives();
    }
  } finally {
    await runtime.close({ graceMs: 0 });
  }
}

/**
 * The executor settings of --config (none without a file: the executors' defaults). The
 * config module (and its schemas) loads only then: most runs need none of it.
 */
async function executorSettings(file: string | undefined): Promise<Partial<ExecutorSettings>> {
  if (!file) return {};
  const { readExecutorSettings } = await import("../config/config.ts");
  try {
    return readExecutorSettings(file, process.env);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function liveFor(
  runtime: Embedded,
  job: JobRequest,
  out: NodeJS.WriteStream,
  io: RunIo,
  quiet: boolean,
): LiveOutput {
  const definition = runtime.engine.openJobDefinition(job);
  return new LiveOutput({
    engine: runtime.engine,
    dataDir: runtime.dataDir,
    jobRequestId: job.id,
    totalTasks: definition.tasks.length,
    out,
    err: io.stderr,
    secrets: secretValues(definition, job.params),
    quiet,
  });
}

function installInterrupt(runtime: Embedded, jobs: JobRequest[], io: RunIo): () => void {
  let count = 0;
  const onSigint = () => {
    count++;
    if (count === 1) {
      io.stderr.write(
        "\ncolony: cancelling (always_run tasks still run); Ctrl-C again to quit now and resume later\n",
      );
      for (const j of jobs) void runtime.engine.cancel(j.id).catch(() => undefined);
    } else {
      io.stderr.write("\ncolony: quitting; finish the job later with 'colony run --resume'\n");
      process.exit(130);
    }
  };
  process.on("SIGINT", onSigint);
  return () => process.off("SIGINT", onSigint);
}

async function report(
  runtime: Embedded,
  finals: JobRequest[],
  json: boolean,
  io: RunIo,
): Promise<number> {
  const p = paint(io.stderr);
  let ok = true;
  const records = [];
  for (const final of finals) {
    const view = await runtime.engine.getJob(final.id);
    // The API's shape (GET /api/job-requests/{id}), secret params masked as there.
    records.push(jobRequestView(view, view.tasks));
    if (view.state !== "COMPLETED") ok = false;
    const tasks = view.tasks.filter((t) => t.jobAttempt === view.attempt);
    const rows = tasks.map((t) => [
      t.taskType,
      t.state === "COMPLETED"
        ? p.green(t.state)
        : t.state === "FAILED"
          ? p.red(t.state)
          : p.yellow(t.state),
      String(t.attempt + 1),
      t.exitCode === undefined ? "-" : String(t.exitCode),
      t.startedAt && t.endedAt ? formatDuration(t.endedAt.getTime() - t.startedAt.getTime()) : "-",
      t.errorMessage ?? "",
    ]);
    io.stderr.write("\n" + table(rows, ["TASK", "STATE", "TRY", "EXIT", "TIME", "NOTE"]) + "\n");
    const took =
      view.startedAt && view.endedAt
        ? ` in ${formatDuration(view.endedAt.getTime() - view.startedAt.getTime())}`
        : "";
    const verdict = view.state === "COMPLETED" ? p.green(view.state) : p.red(view.state);
    const why = view.errorMessage ? ` — ${view.errorMessage}` : "";
    io.stderr.write(`\njob ${view.id} (${view.jobType}) ${verdict}${took}${why}\n`);
  }
  if (json)
    io.stdout.write(JSON.stringify(records.length === 1 ? records[0] : records, null, 2) + "\n");
  return ok ? 0 : 1;
}

export function isUsage(error: unknown): boolean {
  return error instanceof UsageError || (error instanceof ColonyError && error.status === 400);
}
