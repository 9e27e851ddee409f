/**
 * Command-line flags: Node's parseArgs, with its errors turned into ones that say what
 * to type. parseArgs says "Unknown option '--concurency'. To specify a positional
 * argument starting with a '-', place it at the end of the command after '--'...",
 * which sends the reader the wrong way; this says "unknown option '--concurency'; did
 * you mean '--concurrency'?" or lists the options there are.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { closest } from "../core/closest.ts";
import { UsageError } from "./output.ts";

/** A flag the command does not take, or a flag without its value; main adds where --help is. */
export class FlagError extends UsageError {}

export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS")) throw error;
    throw new FlagError(flagProblem(code, (error as Error).message, config));
  }
}

function flagProblem(code: string, message: string, config: ParseArgsConfig): string {
  const options = config.options ?? {};
  const names = Object.keys(options).map((name) => `--${name}`);
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const given = /'([^']*)'/.exec(message)?.[1] ?? message;
    const bare = given.replace(/^-+/, "").split("=")[0]!;
    const near = bare.length > 1 ? closest(bare, Object.keys(options)) : undefined;
    return near
      ? `unknown option '${given}'; did you mean '--${near}'?`
      : `unknown option '${given}'; the options are ${names.join(", ")}`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    // "Option '-p, --param <value>' argument missing" / "Option '--json' does not take an argument"
    const flag = /'(?:-\w, )?(--[\w-]+)/.exec(message)?.[1];
    if (flag && message.endsWith("argument missing")) {
      return `${flag} needs a value: ${flag} VALUE (or ${flag}=VALUE)`;
    }
    if (flag && message.includes("does not take an argument")) {
      return `${flag} is a switch and takes no value: write ${flag} alone`;
    }
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const given = /'([^']*)'/.exec(message)?.[1] ?? message;
    return `unexpected '${given}': this command takes only options`;
  }
  return message.charAt(0).toLowerCase() + message.slice(1);
}
