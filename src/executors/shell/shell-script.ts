/**
 * One shell script per task from its before_script, script and after_script
 * (GitLab CI semantics, which is what seed 000's YAML users expect):
 *
 * - before_script then script run in one shell under `set -e` (and `pipefail` with
 *   bash): the first failing command ends them, and its code is the task's code.
 * - after_script also runs when script failed or the task was cancelled, in its own
 *   subshell (as in GitLab: variables and `cd` of script do not carry over) under
 *   `set -e`, with the code so far in $COLONY_SCRIPT_EXIT_CODE. Its own failure does
 *   not hide an earlier failure; when everything before it passed, its failure fails
 *   the task with its code.
 * - With an after_script, before_script and script run as a background subshell that
 *   the task's shell `wait`s for, with SIGTERM and SIGINT trapped: a trapped signal
 *   interrupts `wait` at once, where a foreground command would keep the shell (and so
 *   the after_script) waiting for a child that the group's SIGTERM missed because it
 *   was forked a moment later. A cancelled task then ends with 143 (SIGINT: 130) after
 *   its after_script. Without an after_script the shell keeps default dispositions
 *   and a cancel ends it by SIGTERM at once (the executor then kills what is left of
 *   its process group).
 *
 * Commands are inserted as written, one after the other, so multi-line commands
 * (YAML block scalars with if/for/heredocs) work; a command that does not parse
 * fails the task with the shell's syntax error in the output.
 */
import { accessSync, constants } from "node:fs";

export interface ShellScriptParts {
  beforeScript: readonly string[];
  script: readonly string[];
  afterScript: readonly string[];
}

/** `/bin/bash` when it exists, else `/bin/sh`. */
export function defaultShell(): string {
  try {
    accessSync("/bin/bash", constants.X_OK);
    return "/bin/bash";
  } catch {
    return "/bin/sh";
  }
}

/** Whether the shell understands bash options (pipefail). */
export function isBash(shell: string): boolean {
  return /(^|\/)bash$/.test(shell);
}

function body(commands: readonly string[]): string {
  return commands.map((c) => (c.endsWith("\n") ? c : `${c}\n`)).join("");
}

export function composeShellScript(parts: ShellScriptParts, options: { bash: boolean }): string {
  const strict = options.bash ? "set -e\nset -o pipefail\n" : "set -e\n";
  const main = body([...parts.beforeScript, ...parts.script]);
  // No after_script: nothing to run on cancel, and no trap keeps the shell waiting for
  // a command that was forked just after the SIGTERM reached the process group.
  if (parts.afterScript.length === 0) return strict + main;
  return (
    // Traps first; a subshell resets them, so the main part keeps default dispositions.
    ': "${__colony_sig=}"\n' +
    "trap ': \"${__colony_sig:=143}\"' TERM\n" +
    // An async list ignores SIGINT: turn an interrupt into SIGTERM for the group.
    "trap ': \"${__colony_sig:=130}\"; kill -s TERM 0 2>/dev/null' INT\n" +
    // Explicit stdin: an async list would otherwise read /dev/null.
    "exec 9<&0\n" +
    "(\n" +
    strict +
    main +
    ") <&9 9<&- &\n" +
    "__colony_main=$!\n" +
    "exec 9<&-\n" +
    // `wait` returns as soon as a trapped signal arrives; then wait for the main part,
    // which got the same signal, to end.
    'wait "$__colony_main"\n' +
    "__colony_rc=$?\n" +
    'if [ -n "$__colony_sig" ]; then\n' +
    '  wait "$__colony_main"\n' +
    "  __colony_rc=$__colony_sig\n" +
    "fi\n" +
    "(\n" +
    "COLONY_SCRIPT_EXIT_CODE=$__colony_rc\n" +
    strict +
    body(parts.afterScript) +
    ")\n" +
    "__colony_after_rc=$?\n" +
    'if [ "$__colony_rc" -eq 0 ]; then exit "$__colony_after_rc"; fi\n' +
    'exit "$__colony_rc"\n'
  );
}
