import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, beforeEach, describe, it } from "node:test";
import { createSqliteStore } from "../../store/sqlite-store.ts";
import type { Store } from "../../store/store.ts";
import { hashToken, newToken, TokenAuthenticator, tokenFromHeader } from "./token-authenticator.ts";

const dir = mkdtempSync(join(tmpdir(), "colony-authn-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A real SQLite store that counts the lookups and touches reaching it. */
async function countingStore(): Promise<{
  store: Store;
  lookups: () => number;
  touches: () => number;
}> {
  const real = createSqliteStore({ path: join(dir, `s${++n}.db`) });
  await real.migrate();
  let lookups = 0;
  let touches = 0;
  const store = new Proxy(real, {
    get(target, prop) {
      if (prop === "findTokenByHash") lookups++;
      if (prop === "touchToken") touches++;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as () => unknown).bind(target) : value;
    },
  });
  return { store, lookups: () => lookups, touches: () => touches };
}

void describe("tokens", () => {
  void it("are colony_ and 32 random bytes in base64url, kept as sha256 hex", () => {
    const a = newToken();
    const b = newToken();
    assert.match(a.token, /^colony_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a.token, b.token);
    assert.equal(a.hash, hashToken(a.token));
    assert.match(a.hash, /^[0-9a-f]{64}$/);
  });

  void it("come bare or as Bearer in the Authorization header", () => {
    assert.equal(tokenFromHeader(undefined), undefined);
    assert.equal(tokenFromHeader("   "), undefined);
    assert.equal(tokenFromHeader("writer"), "writer");
    assert.equal(tokenFromHeader(" Bearer abc "), "abc");
    assert.equal(tokenFromHeader("bearer\tabc"), "abc");
    assert.equal(tokenFromHeader("Bearer"), "Bearer");
    assert.equal(tokenFromHeader("Basic dXNlcjpwYXNz"), "Basic dXNlcjpwYXNz");
  });
});

void describe("TokenAuthenticator", () => {
  let clock = 1_000_000;
  beforeEach(() => {
    clock = 1_000_000;
  });
  const now = () => clock;

  void it("asks the store once per token per cache period, even for a burst", async () => {
    const { store, lookups, touches } = await countingStore();
    const { token, hash } = newToken();
    const stored = await store.createToken({ name: "ci", role: "writer", hash });
    const auth = new TokenAuthenticator({ store, now, cacheMs: 5000, touchEveryMs: 60_000 });
    const burst = await Promise.all(
      Array.from({ length: 50 }, () => auth.authenticate({ authorization: `Bearer ${token}` })),
    );
    assert.ok(burst.every((p) => p?.tokenId === stored.id && p.role === "writer"));
    assert.equal(lookups(), 1);
    assert.equal(touches(), 1, "last use recorded once");
    clock += 4999;
    await auth.authenticate({ authorization: token });
    assert.equal(lookups(), 1);
    clock += 2;
    await auth.authenticate({ authorization: token });
    assert.equal(lookups(), 2, "asked again after the cache period");
    assert.equal(touches(), 1, "touches are throttled");
    clock += 60_000;
    await auth.authenticate({ authorization: token });
    assert.equal(touches(), 2);
    await store.close();
  });

  void it("forgets tokens on invalidate (after a revocation), and never caches unknown ones", async () => {
    const { store, lookups } = await countingStore();
    const { token, hash } = newToken();
    const stored = await store.createToken({ name: "x", role: "reader", hash });
    const auth = new TokenAuthenticator({ store, now });
    assert.ok(await auth.authenticate({ authorization: token }));
    await store.revokeToken(stored.id);
    assert.ok(await auth.authenticate({ authorization: token }), "cached until invalidated");
    auth.invalidate();
    assert.equal(await auth.authenticate({ authorization: token }), undefined);
    const before = lookups();
    await auth.authenticate({ authorization: token });
    assert.equal(lookups(), before + 1, "an unknown token is looked up each time");
    await store.close();
  });

  void it("maps verified certificate CNs to roles; a token, when sent, decides", async () => {
    const { store } = await countingStore();
    const auth = new TokenAuthenticator({
      store,
      clientCnRoles: { "deploy-bot": "writer", toString: "reader" },
    });
    assert.deepEqual(await auth.authenticate({ certificateCn: "deploy-bot" }), {
      name: "deploy-bot",
      role: "writer",
      via: "certificate",
    });
    assert.equal(await auth.authenticate({ certificateCn: "stranger" }), undefined);
    assert.equal(await auth.authenticate({ certificateCn: "constructor" }), undefined);
    assert.equal(
      await auth.authenticate({ certificateCn: "deploy-bot", authorization: "colony_wrong" }),
      undefined,
    );
    assert.throws(
      () => new TokenAuthenticator({ store, clientCnRoles: { x: "root" } }),
      /unknown role 'root'/,
    );
    await store.close();
  });

  void it("lets everyone in as admin when disabled", async () => {
    const { store } = await countingStore();
    const auth = new TokenAuthenticator({ store, disabled: true });
    assert.deepEqual(await auth.authenticate({}), {
      name: "anonymous",
      role: "admin",
      via: "none",
    });
    await store.close();
  });
});
