/**
 * The `colony` command line: dispatches to one module per command.
 */
import { ColonyError } from "../core/errors.ts";
import { FlagError } from "./flags.ts";
import { UsageError } from "./output.ts";

export const HELP = `colony — run jobs (YAML DAGs, commands, functions) wherever they belong, and never lose track of them.

Usage: colony <command> [options]

Commands:
  run <job.yaml>      run one job here to its end, output live (no server needed)
  run --resume        finish jobs a crashed or killed 'colony run' left behind
  server              run the server: REST API, scheduler, store (prints URL and admin token file)
  submit <file|TYPE>  submit a job to the server (--follow: live output until it ends)
  jobs                list|show|cancel|restart|logs [-f] job requests on the server
  definitions         list|show|apply|delete|pause|resume saved job types
  token               create|list|revoke API tokens (admin)
  schedules           list|show|pause|resume cron schedules of job types
  ant                 run tasks on this machine for a server (--server URL --token T --tags a,b)
  ants list           the server's ants: load, capacity, tags, methods, last seen
  work                submit|list|status|results|cancel|release work units (control socket)
  help [command]      help for a command

Run 'colony <command> --help' for a command's options.
Docs: docs/ in the colony repository (jobs, executors, architecture).`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  // Each command loads on use: `colony jobs list` need not load the server (~1 s saved).
  run: async (argv) => (await import("./run-command.ts")).runCommand(argv),
  submit: async (argv) => (await import("./submit-command.ts")).submitCommand(argv),
  jobs: async (argv) => (await import("./jobs-command.ts")).jobsCommand(argv),
  definitions: async (argv) => (await import("./definitions-command.ts")).definitionsCommand(argv),
  token: async (argv) => (await import("./token-command.ts")).tokenCommand(argv),
  schedules: async (argv) => (await import("./schedules-command.ts")).schedulesCommand(argv),
  ant: async (argv) => (await import("./ant-command.ts")).antCommand(argv),
  ants: async (argv) => (await import("./ants-command.ts")).antsCommand(argv),
  work: async (argv) => (await import("./work-command.ts")).workCommand(argv),
  server: async (argv) => (await import("./server-command.ts")).serverCommand(argv),
};

/** Commands that go on when their stdout is gone: they run work, output is a bonus. */
const KEEP_RUNNING = new Set(["run", "server", "ant"]);
let stdoutGone = false;

/**
 * The reader of stdout went away (`colony jobs logs 42 | head`): a command that only
 * prints ends quietly, as `git log | head` does, instead of dying on an unhandled EPIPE
 * with a stack trace; one that runs work (a job, the server, an ant) goes on without
 * printing, so the work is not abandoned.
 */
function stdoutFailed(command: string, error: NodeJS.ErrnoException): void {
  if (error.code !== "EPIPE" && !(stdoutGone && error.code === "ERR_STREAM_DESTROYED")) {
    throw error;
  }
  stdoutGone = true;
  if (!KEEP_RUNNING.has(command)) process.exit(0);
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "-h" || command === "--help") {
    process.stdout.write(HELP + "\n");
    return command ? 0 : 2;
  }
  if (command === "help") {
    const target = rest[0] && COMMANDS[rest[0]];
    if (target) return target(["--help"]);
    process.stdout.write(HELP + "\n");
    return 0;
  }
  if (command === "--version" || command === "version") {
    const { default: pkg } = await import("../../package.json", { with: { type: "json" } });
    process.stdout.write(`colony ${pkg.version} (node ${process.version})\n`);
    return 0;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    process.stderr.write(
      `colony: unknown command '${command}'. Commands: ${Object.keys(COMMANDS).join(", ")}; see colony --help\n`,
    );
    return 2;
  }
  process.stdout.on("error", (error: NodeJS.ErrnoException) => stdoutFailed(command, error));
  try {
    return await handler(rest);
  } catch (error) {
    if (error instanceof FlagError) {
      process.stderr.write(`colony ${command}: ${error.message} (see colony ${command} --help)\n`);
      return 2;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`colony ${command}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof ColonyError) {
      process.stderr.write(`colony ${command}: ${error.message} [${error.code}]\n`);
      return error.status === 400 ? 2 : 1;
    }
    throw error;
  }
}
