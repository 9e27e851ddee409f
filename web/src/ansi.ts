/**
 * ANSI escape sequences in task output: SGR colours and attributes become styled
 * segments; everything else (cursor moves, OSC titles) is dropped. State carries across
 * lines, as in a terminal, so the log view records the style a line starts with.
 */

export interface Style {
  /** 0..15: a palette colour (CSS class); a string: an exact colour (#rrggbb). */
  fg?: number | string;
  bg?: number | string;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
}

export const PLAIN: Style = Object.freeze({});

export interface Segment {
  text: string;
  style: Style;
}

// CSI ... final byte | OSC ... BEL/ST | a two-byte escape. (Escapes are control characters.)
// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;

function cubeColour(n: number): string {
  if (n >= 232) {
    const v = (8 + (n - 232) * 10).toString(16).padStart(2, "0");
    return `#${v}${v}${v}`;
  }
  const i = n - 16;
  const level = (x: number) => (x === 0 ? 0 : 55 + x * 40).toString(16).padStart(2, "0");
  return `#${level(Math.floor(i / 36))}${level(Math.floor(i / 6) % 6)}${level(i % 6)}`;
}

function extended(
  codes: number[],
  i: number,
): { colour: number | string | undefined; used: number } {
  const kind = codes[i + 1];
  if (kind === 5) {
    const n = codes[i + 2] ?? 0;
    return { colour: n < 16 ? n : cubeColour(Math.min(255, n)), used: 2 };
  }
  if (kind === 2) {
    const hex = (x: number | undefined) =>
      Math.max(0, Math.min(255, x ?? 0))
        .toString(16)
        .padStart(2, "0");
    return { colour: `#${hex(codes[i + 2])}${hex(codes[i + 3])}${hex(codes[i + 4])}`, used: 4 };
  }
  return { colour: undefined, used: 0 };
}

/** The style after one SGR sequence's parameters. */
export function applySgr(style: Style, params: string): Style {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  let s: Style = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c === 0) s = {};
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) s.bold = s.dim = undefined;
    else if (c === 23) s.italic = undefined;
    else if (c === 24) s.underline = undefined;
    else if (c === 27) s.inverse = undefined;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = undefined;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = undefined;
    else if (c === 38 || c === 48) {
      const { colour, used } = extended(codes, i);
      if (c === 38) s.fg = colour;
      else s.bg = colour;
      i += used;
    }
  }
  return s;
}

export function isPlain(style: Style): boolean {
  for (const key in style) if ((style as Record<string, unknown>)[key] !== undefined) return false;
  return true;
}

/** The style in effect at the end of `text`, starting from `style`. */
export function styleAfter(style: Style, text: string): Style {
  let s = style;
  for (const m of text.matchAll(ESCAPE)) if (m[2] === "m") s = applySgr(s, m[1] ?? "");
  return s;
}

/** `text` cut into styled segments, escapes removed. */
export function segments(text: string, start: Style = PLAIN): Segment[] {
  if (!text.includes("\x1b")) return [{ text, style: start }];
  const out: Segment[] = [];
  let style = start;
  let last = 0;
  for (const m of text.matchAll(ESCAPE)) {
    const at = m.index;
    if (at > last) out.push({ text: text.slice(last, at), style });
    if (m[2] === "m") style = applySgr(style, m[1] ?? "");
    last = at + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), style });
  return out;
}

/** A line as a terminal would show it after carriage returns (progress bars). */
export function afterCarriageReturns(line: string): string {
  const trimmed = line.endsWith("\r") ? line.slice(0, -1) : line;
  const cr = trimmed.lastIndexOf("\r");
  return cr < 0 ? trimmed : trimmed.slice(cr + 1);
}

/** CSS classes and inline colours for a style. */
export function styleClass(style: Style): { className: string; css?: Record<string, string> } {
  const classes: string[] = [];
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) [fg, bg] = [bg ?? "fg", fg ?? "bg"];
  const css: Record<string, string> = {};
  if (typeof fg === "number") classes.push(`a-f${fg}`);
  else if (fg === "bg") classes.push("a-fi");
  else if (typeof fg === "string" && fg !== "fg") css.color = fg;
  if (typeof bg === "number") classes.push(`a-b${bg}`);
  else if (bg === "fg") classes.push("a-bi");
  else if (typeof bg === "string" && bg !== "bg") css.backgroundColor = bg;
  if (style.bold) classes.push("a-bold");
  if (style.dim) classes.push("a-dim");
  if (style.italic) classes.push("a-it");
  if (style.underline) classes.push("a-ul");
  return Object.keys(css).length
    ? { className: classes.join(" "), css }
    : { className: classes.join(" ") };
}
