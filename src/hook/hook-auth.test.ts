import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  HookAuthError,
  hookHeaders,
  hookJobId,
  hookSignature,
  verifyHookSignature,
} from "./hook-auth.ts";
import { HookSecrets } from "./hook-secrets.ts";

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
  const dir = mkdtempSync(join(tmpdir(), "colony-hook-secrets-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("issues a fresh random key per execution, kept 0600 in its unit dir until revoked", () => {
    const secrets = new HookSecrets();
    const unitDir = join(dir, "units", "aaaa0001");
    const a = secrets.issue({ jobId: "aaaa0001", kind: "task", unitDir });
    const b = secrets.issue({
      jobId: "aaaa0002",
      kind: "task",
      unitDir: join(dir, "units", "aaaa0002"),
    });
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, b);
    assert.equal(
      secrets.issue({ jobId: "aaaa0001", kind: "task", unitDir }),
      a,
      "the same execution keeps its key",
    );
    const file = join(unitDir, "hook.key");
    assert.equal(readFileSync(file, "utf8"), a);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    secrets.revoke("aaaa0001");
    assert.equal(secrets.get("aaaa0001"), undefined);
    assert.equal(existsSync(file), false);
  });

  it("a restarted server takes back the key a re-attached process holds, never a revoked one", async () => {
    const unitDir = join(dir, "units", "bbbb0001");
    const key = new HookSecrets().issue({ jobId: "bbbb0001", kind: "task", unitDir });
    const restarted = new HookSecrets();
    assert.equal(restarted.issue({ jobId: "bbbb0001", kind: "task", unitDir }, true), key);
    const other = new HookSecrets();
    assert.equal((await other.load({ jobId: "bbbb0001", kind: "task", unitDir }))?.key, key);
    other.revoke("bbbb0001");
    assert.equal(
      await new HookSecrets().load({ jobId: "bbbb0001", kind: "task", unitDir }),
      undefined,
    );
    assert.notEqual(
      new HookSecrets().issue({ jobId: "bbbb0001", kind: "task", unitDir }),
      key,
      "a fresh start gets a fresh key",
    );
  });
});
