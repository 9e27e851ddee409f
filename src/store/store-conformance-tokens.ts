/**
 * Conformance: API tokens (only hashes stored; lookup ignores revoked tokens; revoke is
 * idempotent; last use only moves forwards), store-wide settings (set once), and the
 * servers sharing the store.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { ConflictError, NotFoundError, ValidationError } from "../core/errors.ts";
import type { CurrentStore } from "./store-conformance-fixtures.ts";

function hashOf(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function freshHash(): string {
  return hashOf(randomBytes(32).toString("base64url"));
}

export function tokenConformance(store: CurrentStore): void {
  void describe("API tokens", () => {
    void it("creates a token with an id and finds it by hash, never returning the hash", async () => {
      const before = Date.now();
      const hash = freshHash();
      const token = await store().createToken({
        name: "ci · 日本",
        role: "writer",
        hash,
        createdBy: "admin",
      });
      assert.match(token.id, /^tok_[A-Za-z0-9]{8}$/);
      assert.equal(token.name, "ci · 日本");
      assert.equal(token.role, "writer");
      assert.equal(token.createdBy, "admin");
      assert.ok(token.createdAt.getTime() >= before - 1000);
      assert.equal(token.lastUsedAt, undefined);
      assert.equal(token.revokedAt, undefined);
      assert.ok(!JSON.stringify(token).includes(hash), "the hash stays in the store");
      assert.deepEqual(await store().findTokenByHash(hash), token);
      assert.equal(await store().findTokenByHash(freshHash()), undefined);
      assert.equal(await store().findTokenByHash("not a hash"), undefined);
    });

    void it("refuses unknown roles, empty names, malformed and duplicate hashes", async () => {
      const hash = freshHash();
      await assert.rejects(
        store().createToken({ name: "x", role: "root", hash }),
        (e: unknown) => e instanceof ValidationError && /unknown role 'root'/.test(e.message),
      );
      await assert.rejects(
        store().createToken({ name: " ", role: "reader", hash }),
        ValidationError,
      );
      await assert.rejects(
        store().createToken({ name: "x", role: "reader", hash: "abc" }),
        ValidationError,
      );
      await assert.rejects(
        store().createToken({ name: "x", role: "reader", hash: hash.toUpperCase() }),
        ValidationError,
      );
      await store().createToken({ name: "first", role: "reader", hash });
      await assert.rejects(
        store().createToken({ name: "again", role: "admin", hash }),
        ConflictError,
      );
      assert.deepEqual(
        (await store().listTokens()).map((t) => t.name),
        ["first"],
      );
    });

    void it("lists every token oldest first, revoked ones too", async () => {
      const made = [];
      for (const role of ["reader", "writer", "admin", "ant"]) {
        made.push(await store().createToken({ name: `t-${role}`, role, hash: freshHash() }));
      }
      await store().revokeToken(made[1]!.id);
      const listed = await store().listTokens();
      assert.deepEqual(
        listed.map((t) => [t.name, t.role, t.revokedAt !== undefined]),
        [
          ["t-reader", "reader", false],
          ["t-writer", "writer", true],
          ["t-admin", "admin", false],
          ["t-ant", "ant", false],
        ],
      );
    });

    void it("revokes once: lookups stop finding it, a second revoke keeps the first time", async () => {
      const hash = freshHash();
      const token = await store().createToken({ name: "gone", role: "admin", hash });
      const revoked = await store().revokeToken(token.id);
      assert.ok(revoked.revokedAt instanceof Date);
      assert.equal(revoked.id, token.id);
      assert.equal(await store().findTokenByHash(hash), undefined);
      await new Promise((r) => setTimeout(r, 5));
      const again = await store().revokeToken(token.id);
      assert.deepEqual(again.revokedAt, revoked.revokedAt);
      await assert.rejects(
        store().revokeToken("tok_unknown1"),
        (e: unknown) => e instanceof NotFoundError && e.status === 404,
      );
    });

    void it("touch records the last use, never moving it backwards", async () => {
      const hash = freshHash();
      const token = await store().createToken({ name: "used", role: "reader", hash });
      const t1 = new Date(Date.UTC(2030, 0, 1, 12));
      await store().touchToken(token.id, t1);
      assert.deepEqual((await store().findTokenByHash(hash))?.lastUsedAt, t1);
      await store().touchToken(token.id, new Date(t1.getTime() - 60_000));
      assert.deepEqual((await store().findTokenByHash(hash))?.lastUsedAt, t1);
      const t2 = new Date(t1.getTime() + 1000);
      await store().touchToken(token.id, t2);
      assert.deepEqual((await store().listTokens())[0]?.lastUsedAt, t2);
      await store().touchToken("tok_unknown1", t2); // ignored
    });
  });

  void describe("settings", () => {
    void it("keeps the first value of a key and answers it to every later claim", async () => {
      const key = `check_${randomBytes(4).toString("hex")}`;
      assert.equal(await store().claimSetting(key, "first · 日本"), "first · 日本");
      assert.equal(await store().claimSetting(key, "second"), "first · 日本");
      const racing = await Promise.all(
        ["a", "b", "c"].map((v) => store().claimSetting(`${key}_race`, v)),
      );
      assert.equal(new Set(racing).size, 1, "concurrent claims agree on one value");
    });

    void it("records where each server answers, updating it when it starts again", async () => {
      const id = `srv_${randomBytes(4).toString("hex")}`;
      assert.equal(await store().getServer(id), undefined);
      const before = Date.now();
      await store().registerServer({ id, nodeId: "a", url: "http://10.0.0.1:7777" });
      const first = await store().getServer(id);
      assert.equal(first?.url, "http://10.0.0.1:7777");
      assert.equal(first?.nodeId, "a");
      assert.ok(first!.seenAt.getTime() >= before - 1000);
      await new Promise((r) => setTimeout(r, 5));
      await store().registerServer({ id: `${id}b`, nodeId: "b", url: "http://10.0.0.2:7777" });
      await new Promise((r) => setTimeout(r, 5));
      await store().registerServer({ id, nodeId: "a2", url: "https://a.example:7443" });
      assert.deepEqual(
        { ...(await store().getServer(id)), seenAt: undefined },
        { id, nodeId: "a2", url: "https://a.example:7443", seenAt: undefined },
      );
      const listed = (await store().listServers()).filter((s) => s.id.startsWith(id));
      assert.deepEqual(
        listed.map((s) => s.id),
        [id, `${id}b`],
        "most recently seen first",
      );
    });
  });
}
