import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  HookAuthError,
  hookHeaders,
  hookJobId,
  hookSignature,
  verifyHookSignature,
} from "./hook-auth.ts";
import { HookSecrets, hookSecret } from "./hook-secrets.ts";

const KEY = "a".repeat(64);
const NOW = 1_800_000_000_000;

function refused(fn: () => unknown, status: number, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof HookAuthError);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    return true;
  });
}

describe("hook auth", () => {
  it("signs as the seed's Python does: hex HMAC-SHA256(key, time) over latin-1 bytes", () => {
    const time = String(NOW);
    const python = createHmac("sha256", Buffer.from(KEY, "latin1"))
      .update(Buffer.from(time, "latin1"))
      .digest("hex");
    assert.equal(hookSignature(KEY, time), python);
    assert.deepEqual(hookHeaders("unit0001", KEY, NOW), {
      "X-Job-Id": "unit0001",
      "X-Job-Time": time,
      "X-Job-Hash": python,
    });
  });

  it("a key prepared once (the server's hookSecret) signs and verifies as the string does", () => {
    const time = String(NOW);
    for (const key of [KEY, "k\u00e9y-\u00ff-latin1"]) {
      assert.equal(hookSignature(hookSecret(key), time), hookSignature(key, time));
      verifyHookSignature(
        { "x-job-time": time, "x-job-hash": hookSignature(key, time) },
        hookSecret(key),
        NOW,
      );
    }
    refused(
      () =>
        verifyHookSignature(
          { "x-job-time": time, "x-job-hash": hookSignature(KEY, time) },
          hookSecret("b".repeat(64)),
          NOW,
        ),
      403,
      "COLONY_HOOK_BAD_HASH",
    );
  });

  it("accepts a good signature (any hex case) within the window", () => {
    const time = String(NOW - 60_000);
    const hash = hookSignature(KEY, time).toUpperCase();
    verifyHookSignature({ "x-job-time": time, "x-job-hash": hash }, KEY, NOW);
  });

  it("404 without X-Job-Id; 403 for missing, malformed, stale or wrong signatures", () => {
    refused(() => hookJobId({}), 404, "COLONY_HOOK_UNKNOWN_JOB");
    refused(() => hookJobId({ "x-job-id": "  " }), 404, "COLONY_HOOK_UNKNOWN_JOB");
    assert.equal(hookJobId({ "x-job-id": "abc" }), "abc");
    const time = String(NOW);
    refused(
      () => verifyHookSignature({ "x-job-time": time }, KEY, NOW),
      403,
      "COLONY_HOOK_UNSIGNED",
    );
    refused(
      () =>
        verifyHookSignature(
          { "x-job-time": "bouzouf", "x-job-hash": hookSignature(KEY, "bouzouf") },
          KEY,
          NOW,
        ),
      403,
      "COLONY_HOOK_BAD_TIME",
    );
    const old = String(NOW - 5 * 60_000 - 1);
    refused(
      () =>
        verifyHookSignature({ "x-job-time": old, "x-job-hash": hookSignature(KEY, old) }, KEY, NOW),
      403,
      "COLONY_HOOK_STALE",
    );
    const future = String(NOW + 5 * 60_000 + 1);
    refused(
      () =>
        verifyHookSignature(
          { "x-job-time": future, "x-job-hash": hookSignature(KEY, future) },
          KEY,
          NOW,
        ),
      403,
      "COLONY_HOOK_STALE",
    );
    refused(
      () =>
        verifyHookSignature(
          { "x-job-time": time, "x-job-hash": hookSignature("b".repeat(64), time) },
          KEY,
          NOW,
        ),
      403,
      "COLONY_HOOK_BAD_HASH",
    );
    refused(
      () => verifyHookSignature({ "x-job-time": time, "x-job-hash": "abc" }, KEY, NOW),
      403,
      "COLONY_HOOK_BAD_HASH",
    );
  });
});

describe("hook secrets", () => {
  const master = randomBytes(32);

  it("gives each execution its own key, the same for the same id, forgotten when revoked", () => {
    const secrets = new HookSecrets(master);
    const a = secrets.issue({ jobId: "aaaa0001", kind: "task", unitDir: "/u/aaaa0001" });
    const b = secrets.issue({ jobId: "aaaa0002", kind: "task", unitDir: "/u/aaaa0002" });
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, b);
    assert.notEqual(
      a,
      new HookSecrets(master).issue({ jobId: "aaaa0001", kind: "unit", unitDir: "/u/x" }),
      "a work unit with the same id as a task has another key",
    );
    assert.equal(secrets.issue({ jobId: "aaaa0001", kind: "task", unitDir: "/u/aaaa0001" }), a);
    assert.equal(secrets.get("aaaa0001")?.key, a);
    secrets.revoke("aaaa0001");
    assert.equal(secrets.get("aaaa0001"), undefined, "a revoked key is not known any more");
  });

  it("a restarted server (same master key) takes back the key a re-attached process holds", () => {
    const key = new HookSecrets(master).issue({ jobId: "bbbb0001", kind: "task", unitDir: "/u" });
    const restarted = new HookSecrets(master);
    assert.equal(restarted.get("bbbb0001"), undefined, "nothing is known before it re-attaches");
    assert.equal(restarted.load({ jobId: "bbbb0001", kind: "task", unitDir: "/u" }).key, key);
    assert.notEqual(
      new HookSecrets(randomBytes(32)).issue({ jobId: "bbbb0001", kind: "task", unitDir: "/u" }),
      key,
      "another data dir's master key gives another key",
    );
  });

  it("refuses a master key shorter than 32 bytes", () => {
    assert.throws(() => new HookSecrets(randomBytes(16)), /at least 32 bytes/);
  });
});
