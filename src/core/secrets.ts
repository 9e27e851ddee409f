/**
 * Secret variables at rest (SPEC section 2): values of variables marked `secret` are
 * sealed with AES-256-GCM under a key kept in the data dir before a definition is
 * stored, and opened again when a job runs. A value that was altered, or sealed under
 * another key, fails loudly instead of running with garbage.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { ColonyError } from "./errors.ts";
import type { JobDefinition, Variable } from "./job-definition.ts";

export const SECRET_UNREADABLE = "COLONY_SECRET_UNREADABLE";
export const SECRET_KEY_INVALID = "COLONY_SECRET_KEY_INVALID";
export const SECRET_KEY_MISMATCH = "COLONY_SECRET_KEY_MISMATCH";
export const SEALED_PREFIX = "sealed:v1:";

const KEY_FILE = "secret.key";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function readKey(path: string): Buffer | undefined {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ColonyError(
      SECRET_KEY_INVALID,
      `cannot read the secret key ${path}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  if (data.length !== KEY_BYTES) {
    throw new ColonyError(
      SECRET_KEY_INVALID,
      `${path} holds ${data.length} bytes instead of a ${KEY_BYTES}-byte key; restore the original file (secrets sealed with it cannot be opened without it)`,
    );
  }
  return data;
}

/**
 * The data dir's secret key, created on first use: 32 random bytes in
 * `{dataDir}/secret.key`, mode 0600. Creation is atomic (written to a temporary file,
 * then hard-linked into place), so two processes starting together agree on one key.
 */
export function loadOrCreateKey(dataDir: string): Buffer {
  const path = join(dataDir, KEY_FILE);
  const existing = readKey(path);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const tmp = join(dataDir, `.${KEY_FILE}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, randomBytes(KEY_BYTES));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // EEXIST: another process won the race; its key is the key. Without hard links, a
    // rename is the next best thing (only if the key is still missing).
    if (code !== "EEXIST") {
      if (readKey(path) === undefined) renameSync(tmp, path);
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed into place
    }
  }
  syncDir(dataDir);
  const key = readKey(path);
  if (!key) throw new ColonyError(SECRET_KEY_INVALID, `could not create the secret key ${path}`);
  return key;
}

/**
 * A value that tells keys apart without revealing them: HMAC-SHA256 of a fixed text.
 * The store keeps the first server's, and every server compares its own (checkKeyMatches).
 */
export function keyCheckValue(key: Buffer): string {
  checkKey(key);
  return createHmac("sha256", key).update("colony secret.key check v1").digest("hex");
}

/** The store setting that holds keyCheckValue of the key its secrets are sealed with. */
export const KEY_CHECK_SETTING = "secret_key_check";

/**
 * Refuses a key other than the one the store's secrets are sealed with: the store holds
 * the first server's key check value. Two servers with two keys would each fail to open
 * what the other sealed (COLONY_SECRET_UNREADABLE at submit, on one server in two).
 */
export async function checkKeyMatches(
  store: { claimSetting(key: string, value: string): Promise<string> },
  key: Buffer,
  dataDir: string,
  created: boolean,
): Promise<void> {
  const mine = keyCheckValue(key);
  const theirs = await store.claimSetting(KEY_CHECK_SETTING, mine);
  if (theirs === mine) return;
  const path = join(dataDir, KEY_FILE);
  throw new ColonyError(
    SECRET_KEY_MISMATCH,
    `${path} is not the secret key this store was set up with${created ? " (this data dir had none, so one was made just now)" : ""}. ` +
      "Every server that shares a store needs the same key: it seals secret job variables. " +
      `Copy secret.key from the data dir of a server that uses this store to ${path}, then start again; ` +
      "if that key is lost, see 'Lost secret.key' in docs/deployment.md",
  );
}

/** Whether the data dir has a secret key yet (loadOrCreateKey makes one when not). */
export function hasKey(dataDir: string): boolean {
  return existsSync(join(dataDir, KEY_FILE));
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some platforms cannot fsync a directory; the key file itself was synced.
  }
}

function checkKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new ColonyError(
      SECRET_KEY_INVALID,
      `the secret key must be ${KEY_BYTES} bytes (use loadOrCreateKey)`,
    );
  }
}

export function isSealed(value: unknown): value is string {
  return typeof value === "string" && value.startsWith(SEALED_PREFIX);
}

/** `"sealed:v1:" + base64(iv | tag | ciphertext)` of the value's JSON. */
export function sealValue(value: unknown, key: Buffer): string {
  checkKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  const body = Buffer.concat([
    cipher.update(JSON.stringify(value ?? null), "utf8"),
    cipher.final(),
  ]);
  return SEALED_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
}

export function openValue(sealed: string, key: Buffer, name = "a secret"): unknown {
  checkKey(key);
  const unreadable = (cause?: unknown) =>
    new ColonyError(
      SECRET_UNREADABLE,
      `secret variable ${name} cannot be opened: it was altered, or sealed with another secret.key than this data dir's; save the definition again with the secret's value`,
      { status: 500, cause, details: { variable: name } },
    );
  const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), "base64");
  if (raw.length < IV_BYTES + TAG_BYTES) throw unreadable();
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV_BYTES));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    const plain = Buffer.concat([
      decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ]);
    return JSON.parse(plain.toString("utf8")) as unknown;
  } catch (error) {
    throw unreadable(error);
  }
}

function hasSecrets(vars: Record<string, Variable>): boolean {
  for (const k in vars) if (vars[k]!.secret) return true;
  return false;
}

function mapSecrets(def: JobDefinition, fn: (v: Variable) => unknown): JobDefinition {
  // Most definitions have no secret: no copy then (this runs on every submit and start).
  if (!hasSecrets(def.variables) && !def.tasks.some((t) => hasSecrets(t.variables))) return def;
  const each = (vars: Record<string, Variable>): Record<string, Variable> => {
    const out: Record<string, Variable> = {};
    for (const [k, v] of Object.entries(vars)) {
      Object.defineProperty(out, k, {
        value: v.secret ? { ...v, value: fn(v) } : { ...v },
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  };
  return {
    ...def,
    variables: each(def.variables),
    tasks: def.tasks.map((t) => ({ ...t, variables: each(t.variables) })),
  };
}

/** A copy with every secret variable's value sealed (values already sealed stay as they are); the definition itself when it has none. */
export function sealDefinition(def: JobDefinition, key: Buffer): JobDefinition {
  checkKey(key);
  return mapSecrets(def, (v) => (isSealed(v.value) ? v.value : sealValue(v.value, key)));
}

/** The reverse of sealDefinition (the definition itself when it has no secret); throws COLONY_SECRET_UNREADABLE for an altered value. */
export function openDefinition(def: JobDefinition, key: Buffer): JobDefinition {
  checkKey(key);
  return mapSecrets(def, (v) =>
    isSealed(v.value) ? openValue(v.value, key, `'${v.name}'`) : v.value,
  );
}

/**
 * The plain texts to mask in output: every secret variable's value (as text, as JSON and
 * each string inside it), and request params that override a secret variable or are
 * themselves marked `{value, secret: true}`.
 */
export function secretValues(def: JobDefinition, params: Record<string, unknown> = {}): string[] {
  const out = new Set<string>();
  const add = (value: unknown, depth = 0): void => {
    if (value === null || value === undefined || depth > 50) return;
    if (typeof value === "string") {
      if (value !== "") out.add(value);
      return;
    }
    if (typeof value !== "object") {
      out.add(String(value));
      return;
    }
    out.add(JSON.stringify(value));
    for (const inner of Object.values(value)) add(inner, depth + 1);
  };
  const secretNames = new Set<string>();
  for (const vars of [def.variables, ...def.tasks.map((t) => t.variables)]) {
    for (const v of Object.values(vars)) {
      if (!v.secret) continue;
      secretNames.add(v.name);
      add(v.value);
    }
  }
  for (const [name, value] of Object.entries(params)) {
    if (secretNames.has(name)) add(value);
    else if (isSecretParam(value)) add(value.value);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

function isSecretParam(value: unknown): value is { value: unknown; secret: true } {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as { secret?: unknown }).secret === true &&
    "value" in value
  );
}
