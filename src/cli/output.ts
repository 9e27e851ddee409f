/**
 * Terminal helpers: colours only on a TTY (and never with NO_COLOR), aligned tables.
 */
const useColor = (stream: NodeJS.WriteStream) => Boolean(stream.isTTY) && !process.env.NO_COLOR;

export function paint(stream: NodeJS.WriteStream) {
  const on = useColor(stream);
  const wrap = (code: string) => (text: string) => (on ? `\x1b[${code}m${text}\x1b[0m` : text);
  return {
    dim: wrap("2"),
    bold: wrap("1"),
    red: wrap("31"),
    green: wrap("32"),
    yellow: wrap("33"),
    cyan: wrap("36"),
    magenta: wrap("35"),
    blue: wrap("34"),
    enabled: on,
  };
}

export { count } from "../core/text.ts";

/**
 * A refused definition as compilers print errors: `file:line:column: path: what`. The
 * message (the API's too) starts with "line L, column C at PATH: ", which the file's
 * line and column already say.
 */
export function definitionErrorLine(
  file: string,
  message: string,
  at: { line?: unknown; column?: unknown } | undefined,
): string {
  if (typeof at?.line !== "number") return `${file}: ${message}`;
  const rest = message.replace(/^line \d+, column \d+(?: at (\S+))?: /, (_m, path?: string) =>
    path ? `${path}: ` : "",
  );
  return `${file}:${at.line}:${String(at.column)}: ${rest}`;
}

export function table(rows: string[][], headers: string[]): string {
  const all = [headers, ...rows];
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;
  const widths = headers.map((_, i) => Math.max(...all.map((r) => visible(r[i] ?? ""))));
  return all
    .map((r) =>
      r
        .map((cell, i) => cell + " ".repeat(Math.max(0, (widths[i] ?? 0) - visible(cell))))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

export class UsageError extends Error {}
