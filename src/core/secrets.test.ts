import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parseJobDefinition } from "./definition-parser.ts";
import { ColonyError } from "./errors.ts";
import { loadOrCreateKey, openDefinition, sealDefinition, secretValues } from "./secrets.ts";

const root = mkdtempSync(join(tmpdir(), "colony-secrets-"));
after(() => rmSync(root, { recursive: true, force: true }));

const def = parseJobDefinition(
  [
    "job_type: s",
    "job_variables:",
    "  Token: {value: t0k3n-value, secret: true}",
    "  Region: us-west-2",
    "tasks:",
    "- task_type: a",
    "  variables:",
    "    Creds: {value: {user: bob, pass: p4ssw0rd}, secret: true}",
    "    Plain: {value: visible}",
  ].join("\n"),
);

void describe("loadOrCreateKey", () => {
  void it("creates a 32-byte key with mode 0600 once, then reads the same key", () => {
    const dir = join(root, "data", "nested");
    const key = loadOrCreateKey(dir);
    assert.equal(key.length, 32);
    assert.equal(statSync(join(dir, "secret.key")).mode & 0o777, 0o600);
    assert.deepEqual(loadOrCreateKey(dir), key);
    assert.deepEqual(readdirSync(dir), ["secret.key"]);
  });

  void it("refuses a key file of the wrong size", () => {
    const dir = join(root, "bad");
    loadOrCreateKey(dir);
    writeFileSync(join(dir, "secret.key"), "short");
    assert.throws(() => loadOrCreateKey(dir), { code: "COLONY_SECRET_KEY_INVALID" });
  });
});

void describe("sealDefinition / openDefinition", () => {
  const key = loadOrCreateKey(join(root, "k1"));

  void it("seals only secret values, as sealed:v1 strings, and opens them again", () => {
    const sealed = sealDefinition(def, key);
    const token = sealed.variables["Token"]?.value;
    assert.equal(typeof token, "string");
    assert.match(token as string, /^sealed:v1:[A-Za-z0-9+/]+=*$/);
    assert.equal(sealed.variables["Region"]?.value, "us-west-2");
    assert.match(String(sealed.tasks[0]?.variables["Creds"]?.value), /^sealed:v1:/);
    assert.equal(sealed.tasks[0]?.variables["Plain"]?.value, "visible");
    assert.ok(!JSON.stringify(sealed).includes("t0k3n-value"));
    assert.ok(!JSON.stringify(sealed).includes("p4ssw0rd"));
    assert.equal(def.variables["Token"]?.value, "t0k3n-value", "the input is not modified");
    assert.deepEqual(openDefinition(sealed, key), def);
    assert.deepEqual(sealDefinition(sealed, key), sealed, "sealing twice changes nothing");
  });

  void it("refuses a tampered value or another key with COLONY_SECRET_UNREADABLE", () => {
    const sealed = sealDefinition(def, key);
    const token = sealed.variables["Token"];
    assert.ok(token);
    const raw = Buffer.from((token.value as string).slice("sealed:v1:".length), "base64");
    raw[raw.length - 1] = (raw[raw.length - 1] ?? 0) ^ 1;
    const tampered = {
      ...sealed,
      variables: {
        ...sealed.variables,
        Token: { ...token, value: `sealed:v1:${raw.toString("base64")}` },
      },
    };
    const unreadable = (err: unknown) => {
      assert.ok(err instanceof ColonyError);
      assert.equal(err.code, "COLONY_SECRET_UNREADABLE");
      assert.match(err.message, /'Token'/);
      return true;
    };
    assert.throws(() => openDefinition(tampered, key), unreadable);
    assert.throws(() => openDefinition(sealed, loadOrCreateKey(join(root, "k2"))), unreadable);
    const truncated = {
      ...sealed,
      variables: { ...sealed.variables, Token: { ...token, value: "sealed:v1:AAAA" } },
    };
    assert.throws(() => openDefinition(truncated, key), unreadable);
  });
});

void describe("secretValues", () => {
  void it("lists secret values (strings, JSON and nested strings) and params overriding them", () => {
    const values = secretValues(def, {
      Token: "override-token",
      Region: "not-secret",
      Extra: { value: "param-secret", secret: true },
    });
    assert.deepEqual(
      new Set(values),
      new Set([
        "t0k3n-value",
        '{"user":"bob","pass":"p4ssw0rd"}',
        "bob",
        "p4ssw0rd",
        "override-token",
        "param-secret",
      ]),
    );
    assert.deepEqual(
      secretValues(parseJobDefinition("job_type: x\ntasks: [{task_type: a}]\n")),
      [],
    );
  });
});
