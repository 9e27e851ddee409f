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
