/**
 * JSON request bodies: parsed with JSON.parse, refused with a 400 that says where the
 * syntax breaks (line, column, byte position) — V8 names the position for some errors
 * only, so a small scanner finds it for the rest — and refused when they carry
 * `__proto__` (or `constructor.prototype`) keys, as Fastify's own parser does.
 */
import { ColonyError } from "../core/errors.ts";

export class MalformedJsonError extends ColonyError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("COLONY_MALFORMED_JSON", message, { status: 400, details });
  }
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === "") {
    throw new ColonyError("COLONY_VALIDATION", "the body is empty; send a JSON object", {
      status: 400,
    });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const message = (error as Error).message;
    const stated = /at position (\d+)/.exec(message)?.[1];
    const position = stated !== undefined ? Number(stated) : findJsonError(text);
    // V8 appends the position, or quotes the text (which may be long): keep the reason only.
    const reason = message
      .replace(/ in JSON at position.*$/s, "")
      .replace(/, (?:\.\.\.)?".*$/s, "");
    if (position === undefined) throw new MalformedJsonError(`malformed JSON body: ${reason}`);
    const { line, column } = lineAndColumn(text, position);
    throw new MalformedJsonError(
      `malformed JSON body at line ${line}, column ${column} (position ${position}): ${reason}`,
      { position, line, column },
    );
  }
  if (/"(?:__proto__|constructor)"/.test(text)) refusePoison(value);
  return value;
}

function refusePoison(value: unknown): void {
  const stack = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === null || typeof node !== "object") continue;
    if (Object.hasOwn(node, "__proto__")) {
      throw new MalformedJsonError("the JSON body has a __proto__ key, which colony refuses");
    }
    const ctor = (node as Record<string, unknown>).constructor;
    if (
      Object.hasOwn(node, "constructor") &&
      ctor !== null &&
      typeof ctor === "object" &&
      Object.hasOwn(ctor, "prototype")
    ) {
      throw new MalformedJsonError(
        "the JSON body has a constructor.prototype key, which colony refuses",
      );
    }
    stack.push(...Object.values(node));
  }
}

export function lineAndColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < position && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: position - start + 1 };
}

const LITERALS = ["true", "false", "null"];

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

/**
 * The offset of the first syntax error in `s` (RFC 8259), or undefined when it finds
 * none or the nesting is too deep to scan.
 */
export function findJsonError(s: string): number | undefined {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t" || s[i] === "\n" || s[i] === "\r")) i++;
  };
  const string = () => {
    i++; // the opening quote
    for (;;) {
      if (i >= s.length) fail();
      const c = s.charCodeAt(i);
      if (c === 34) {
        i++;
        return;
      }
      if (c < 32) fail();
      if (c === 92) {
        i++;
        const e = s[i];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) i += 5;
        else fail();
        continue;
      }
      i++;
    }
  };
  const digits = () => {
    if (!isDigit(s[i])) fail();
    while (isDigit(s[i])) i++;
  };
  const number = () => {
    if (s[i] === "-") i++;
    if (s[i] === "0") i++;
    else digits();
    if (s[i] === ".") {
      i++;
      digits();
    }
    if (s[i] === "e" || s[i] === "E") {
      i++;
      if (s[i] === "+" || s[i] === "-") i++;
      digits();
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === "{") {
      i++;
      ws();
      if (s[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (s[i] !== '"') fail();
        string();
        ws();
        if (s[i] !== ":") fail();
        i++;
        value();
        ws();
        if (s[i] === ",") i++;
        else if (s[i] === "}") {
          i++;
          return;
        } else fail();
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (s[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (s[i] === ",") i++;
        else if (s[i] === "]") {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    if (c === "-" || isDigit(c)) return number();
    const literal = LITERALS.find((l) => l[0] === c);
    if (literal) {
      let k = 0;
      while (k < literal.length && s[i + k] === literal[k]) k++;
      i += k;
      if (k === literal.length) return;
    }
    fail();
  };
  try {
    value();
    ws();
    return i < s.length ? i : undefined;
  } catch (error) {
    if (typeof error === "number") return error;
    return undefined; // too deep for the stack: say what JSON.parse said, without a position
  }
}
