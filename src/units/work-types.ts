/**
 * Work types (SPEC section 7, seed 002 `work-command`): a name, the executable to run
 * and its command-line `params`, whether a submitter may append runtime params, and
 * whether submissions must be signed. A unit of a work type runs
 * `command params [runtime params]` with its stdin payload on stdin and stdout and
 * stderr going to the unit's `stdout` file.
 *
 * `params` is split into words the way receptor splits it (shell-like quoting, no
 * expansion: `-c "echo ${line^^}"` passes `echo ${line^^}` to the command as one word,
 * untouched), then every word is quoted again for the shell that execs the command.
 */
import { ColonyError } from "../core/errors.ts";

export interface WorkType {
  readonly name: string;
  readonly command: string;
  /** The configured params, as written (split with splitParams). */
  readonly params: string;
  readonly allowRuntimeParams: boolean;
  readonly verifySignature: boolean;
  readonly description?: string;
}

/** The config block's shape (config.ts `work_types` entries). */
export interface WorkTypeConfig {
  work_type: string;
  command: string;
  params?: string;
  allow_runtime_params?: boolean;
  verify_signature?: boolean;
  description?: string;
}

/** Work type names colony keeps for itself (receptor's built-in remote type). */
export const RESERVED_WORK_TYPES: ReadonlySet<string> = new Set(["remote"]);

export class WorkTypeError extends ColonyError {
  constructor(message: string) {
    super("COLONY_WORK_TYPE_INVALID", message, { status: 400 });
  }
}

/**
 * Validates the configured work types: unique names, none reserved, every command
 * splittable, and a public key present when a type verifies signatures.
 */
export function loadWorkTypes(
  configs: readonly WorkTypeConfig[],
  options: { hasVerificationKey: boolean },
): Map<string, WorkType> {
  const out = new Map<string, WorkType>();
  configs.forEach((c, i) => {
    const key = `work_types[${i}]`;
    if (RESERVED_WORK_TYPES.has(c.work_type)) {
      throw new WorkTypeError(
        `${key}.work_type: '${c.work_type}' is reserved for remote units; choose another name`,
      );
    }
    if (out.has(c.work_type)) {
      throw new WorkTypeError(`${key}.work_type: '${c.work_type}' is defined twice`);
    }
    try {
      splitParams(c.params ?? "");
    } catch (error) {
      throw new WorkTypeError(`${key}.params: ${(error as Error).message}`);
    }
    if (c.verify_signature && !options.hasVerificationKey) {
      throw new WorkTypeError(
        `${key}.verify_signature is true but there is no public key to verify with; ` +
          "set work_verification.public_key",
      );
    }
    out.set(c.work_type, {
      name: c.work_type,
      command: c.command,
      params: c.params ?? "",
      allowRuntimeParams: c.allow_runtime_params ?? false,
      verifySignature: c.verify_signature ?? false,
      ...(c.description === undefined ? {} : { description: c.description }),
    });
  });
  return out;
}

/**
 * Splits a params string into words with POSIX-shell quoting and no expansion (what
 * receptor's shlex does): whitespace separates words; '...' is literal; in "..." and
 * outside quotes a backslash escapes the next character; `#` at the start of a word
 * begins a comment to the end of the line. Throws on an unclosed quote.
 */
export function splitParams(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "#" && !inWord) {
      const nl = text.indexOf("\n", i);
      i = nl < 0 ? text.length : nl;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unclosed single quote at position ${i + 1}`);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= text.length) throw new Error("unclosed double quote");
        const d = text[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === "\\" && i + 1 < text.length) {
          word += text[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
    } else if (c === "\\") {
      if (i + 1 < text.length) word += text[i + 1];
      inWord = true;
      i += 2;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The configured params joined with the runtime params (receptor's combineParams). */
export function combinedParams(workType: WorkType, runtimeParams: string | undefined): string {
  const extra = runtimeParams ?? "";
  if (extra === "") return workType.params;
  if (workType.params === "") return extra;
  return `${workType.params} ${extra}`;
}

/** argv of a unit: the command, then its params split into words. */
export function commandArgv(workType: WorkType, params: string): string[] {
  return [workType.command, ...splitParams(params)];
}

export function quoteShellWord(word: string): string {
  return /^[A-Za-z0-9_./=:,+@%-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A shell line that replaces the shell with argv (so the unit's pid is the command's). */
export function execLine(argv: readonly string[]): string {
  return `exec ${argv.map(quoteShellWord).join(" ")}`;
}
