/**
 * Typed reads over a parsed YAML (or JSON) document for the definition parser: every
 * read either returns a plain value or throws a DefinitionError carrying the YAML path,
 * the 1-based line and column of the offending node, and what to write instead.
 */
import { isAlias, isMap, isScalar, isSeq } from "yaml";
import type { Document, LineCounter, Node as YamlNode } from "yaml";
import { parseDuration } from "./duration.ts";
import { DefinitionError } from "./errors.ts";
import type { SourcePosition } from "./errors.ts";

export type { YamlNode };

export interface Entry {
  key: string;
  keyNode: YamlNode;
  /** null when the key has no value (`key:`). */
  value: YamlNode | null;
  path: string;
}

/** Aliases may expand exponentially ("billion laughs"); plain values stop here. */
const MAX_EXPANDED_NODES = 100_000;
const MAX_DEPTH = 200;

export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

/** Assigns without letting a `__proto__` key change the object's prototype. */
export function setKey<T>(target: Record<string, T>, key: string, value: T): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    target[key] = value;
  }
}

export class Reader {
  readonly #doc: Document;
  readonly #lines: LineCounter;
  #expanded = 0;

  constructor(doc: Document, lines: LineCounter) {
    this.#doc = doc;
    this.#lines = lines;
  }

  position(node: YamlNode | null | undefined): SourcePosition | undefined {
    const range = node?.range;
    if (!range) return undefined;
    return this.positionAt(range[0]);
  }

  positionAt(offset: number): SourcePosition {
    const { line, col } = this.#lines.linePos(offset);
    return { line, column: col };
  }

  fail(message: string, path: string, node: YamlNode | null | undefined): never {
    throw new DefinitionError(message, path, this.position(node));
  }

  /** Follows an alias to its anchored node; null stands for an absent or null value. */
  resolve(node: YamlNode | null | undefined, path: string): YamlNode | null {
    if (node === null || node === undefined) return null;
    if (!isAlias(node)) return node;
    const target = node.resolve(this.#doc);
    if (!target)
      this.fail(
        `alias *${node.source} names no anchor; define &${node.source} before it`,
        path,
        node,
      );
    return target;
  }

  isNull(node: YamlNode | null | undefined, path: string): boolean {
    const resolved = this.resolve(node, path);
    return resolved === null || (isScalar(resolved) && resolved.value === null);
  }

  /** "a mapping", "the number 42"... for messages about wrong types. */
  describe(node: YamlNode | null): string {
    if (node === null) return "nothing";
    if (isAlias(node)) return `an alias (*${node.source})`;
    if (isMap(node)) return "a mapping";
    if (isSeq(node)) return "a list";
    if (isScalar(node)) {
      const v = node.value;
      if (v === null) return "null";
      if (typeof v === "string") return `the string ${JSON.stringify(shorten(v))}`;
      if (typeof v === "number" || typeof v === "boolean") return `the ${typeof v} ${String(v)}`;
      return `a ${typeof v}`;
    }
    return "an unsupported value";
  }

  entries(node: YamlNode | null | undefined, path: string, what: string): Entry[] {
    const resolved = this.resolve(node, path);
    if (!isMap(resolved)) {
      this.fail(
        `expected ${what} (a mapping of key: value), got ${this.describe(resolved)}`,
        path,
        resolved ?? node,
      );
    }
    const out: Entry[] = [];
    const seen = new Map<string, YamlNode>();
    for (const pair of resolved.items) {
      const keyNode = this.resolve(pair.key as YamlNode | null, path);
      if (!isScalar(keyNode) || keyNode.value === null || typeof keyNode.value === "object") {
        this.fail("keys must be plain text or numbers", path, keyNode ?? resolved);
      }
      const key =
        typeof keyNode.source === "string" && typeof keyNode.value !== "string"
          ? keyNode.source
          : String(keyNode.value);
      const first = seen.get(key);
      if (first) {
        const at = this.position(first);
        this.fail(
          `duplicate key '${key}'${at ? ` (first at line ${at.line})` : ""}`,
          childPath(path, key),
          keyNode,
        );
      }
      seen.set(key, keyNode);
      out.push({
        key,
        keyNode,
        value: (pair.value as YamlNode | null) ?? null,
        path: childPath(path, key),
      });
    }
    return out;
  }

  list(node: YamlNode | null | undefined, path: string, what: string): YamlNode[] {
    const resolved = this.resolve(node, path);
    if (!isSeq(resolved))
      this.fail(
        `expected ${what} (a list), got ${this.describe(resolved)}`,
        path,
        resolved ?? node,
      );
    return resolved.items as YamlNode[];
  }

  string(node: YamlNode | null | undefined, path: string): string {
    const resolved = this.resolve(node, path);
    if (isScalar(resolved) && typeof resolved.value === "string") return resolved.value;
    const hint =
      isScalar(resolved) && resolved.value !== null ? "; quote it if you meant text" : "";
    return this.fail(
      `expected a string, got ${this.describe(resolved)}${hint}`,
      path,
      resolved ?? node,
    );
  }

  /** A string, or a number or boolean taken as written (`1.10` stays "1.10"). */
  text(node: YamlNode | null | undefined, path: string): string {
    const resolved = this.resolve(node, path);
    if (isScalar(resolved)) {
      const v = resolved.value;
      if (typeof v === "string") return v;
      if (typeof v === "number" || typeof v === "boolean") {
        return typeof resolved.source === "string" && resolved.source !== ""
          ? resolved.source
          : String(v);
      }
    }
    return this.fail(
      `expected a string, number or boolean, got ${this.describe(resolved)}`,
      path,
      resolved ?? node,
    );
  }

  /** A string or a list of them; a single string becomes a one-element list; null is empty. */
  stringList(
    node: YamlNode | null | undefined,
    path: string,
    options: { text?: boolean } = {},
  ): string[] {
    const resolved = this.resolve(node, path);
    const read = (n: YamlNode | null, p: string): string =>
      options.text ? this.text(n, p) : this.string(n, p);
    if (this.isNull(resolved, path)) return [];
    if (isSeq(resolved))
      return (resolved.items as YamlNode[]).map((item, i) => read(item, childPath(path, i)));
    if (isScalar(resolved)) return [read(resolved, path)];
    return this.fail(
      `expected a string or a list of strings, got ${this.describe(resolved)}`,
      path,
      resolved,
    );
  }

  /** A mapping of strings; numbers and booleans are kept as written. */
  stringMap(node: YamlNode | null | undefined, path: string, what: string): Record<string, string> {
    const out: Record<string, string> = {};
    if (this.isNull(node, path)) return out;
    for (const e of this.entries(node, path, what)) setKey(out, e.key, this.text(e.value, e.path));
    return out;
  }

  bool(node: YamlNode | null | undefined, path: string): boolean {
    const resolved = this.resolve(node, path);
    if (isScalar(resolved) && typeof resolved.value === "boolean") return resolved.value;
    return this.fail(
      `expected true or false, got ${this.describe(resolved)}`,
      path,
      resolved ?? node,
    );
  }

  int(node: YamlNode | null | undefined, path: string, min: number): number {
    const resolved = this.resolve(node, path);
    if (
      !isScalar(resolved) ||
      typeof resolved.value !== "number" ||
      !Number.isSafeInteger(resolved.value)
    ) {
      return this.fail(
        `expected a whole number, got ${this.describe(resolved)}`,
        path,
        resolved ?? node,
      );
    }
    if (resolved.value < min)
      this.fail(`must be ${min} or more, got ${resolved.value}`, path, resolved);
    return resolved.value;
  }

  /** Go-style duration ("90s", "1h30m"), in milliseconds. */
  duration(node: YamlNode | null | undefined, path: string): number {
    const resolved = this.resolve(node, path);
    const written =
      isScalar(resolved) &&
      (typeof resolved.value === "string" || typeof resolved.value === "number")
        ? this.text(resolved, path)
        : undefined;
    const ms = written === undefined ? undefined : parseDuration(written);
    if (ms !== undefined) return ms;
    const got = written === undefined ? this.describe(resolved) : `'${shorten(written)}'`;
    const hint =
      written !== undefined && /^\d+(\.\d+)?$/.test(written.trim())
        ? " (a number needs a unit)"
        : "";
    return this.fail(
      `invalid duration ${got}${hint}; write it Go style with a unit, e.g. 500ms, 90s, 5m, 1h30m`,
      path,
      resolved ?? node,
    );
  }

  /** Any JSON value (mappings become objects, lists arrays), for variables and executor options. */
  plain(node: YamlNode | null | undefined, path: string, depth = 0): unknown {
    if (++this.#expanded > MAX_EXPANDED_NODES || depth > MAX_DEPTH) {
      this.fail(
        "the value is too large or too deeply nested (check for recursive aliases)",
        path,
        node,
      );
    }
    const resolved = this.resolve(node, path);
    if (resolved === null) return null;
    if (isMap(resolved)) {
      const out: Record<string, unknown> = {};
      for (const e of this.entries(resolved, path, "a mapping"))
        setKey(out, e.key, this.plain(e.value, e.path, depth + 1));
      return out;
    }
    if (isSeq(resolved)) {
      return (resolved.items as YamlNode[]).map((item, i) =>
        this.plain(item, childPath(path, i), depth + 1),
      );
    }
    if (isScalar(resolved)) {
      const v = resolved.value;
      if (v === null || typeof v === "string" || typeof v === "boolean") return v;
      if (typeof v === "number" && Number.isFinite(v)) return v;
    }
    return this.fail(`${this.describe(resolved)} is not a JSON value`, path, resolved);
  }
}

function shorten(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
