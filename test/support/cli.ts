/** Runs the real `colony` CLI as a child process, as a user would. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = join(ROOT, "bin", "colony.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function startCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): {
  child: ChildProcess;
  result: Promise<CliResult>;
  stdout: () => string;
  stderr: () => string;
} {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const result = new Promise<CliResult>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, result, stdout: () => stdout, stderr: () => stderr };
}

export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return startCli(args, options).result;
}

export function tempDir(prefix = "colony-test-"): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Runs the CLI like `colony ... | head -1`: its stdout is closed as soon as the first
 * line arrived, so later writes fail with EPIPE. `stdout` is that first line.
 */
export function runCliClosingStdout(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const run = startCli(args, options);
  const out = run.child.stdout!;
  const onData = () => {
    if (run.stdout().includes("\n")) {
      out.off("data", onData);
      out.destroy();
    }
  };
  out.on("data", onData);
  return run.result.then((r) => ({ ...r, stdout: r.stdout.slice(0, r.stdout.indexOf("\n") + 1) }));
}
