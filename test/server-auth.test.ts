/**
 * Auth of the real server (startServer on a real socket, real SQLite store): the first
 * admin token file, 401 and 403, bare and Bearer tokens, token create/list/revoke over
 * HTTP, and --insecure-no-auth.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, statSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { startCli, tempDir } from "./support/cli.ts";
import { http, roleTestRoutes, testConfig, waitUntil } from "./support/server-harness.ts";

const quiet = { log: () => undefined };
const routes = [...ALL_ROUTES, roleTestRoutes];

interface TokenJson {
  id: string;
  name: string;
  role: string;
  token?: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

describe("server auth", () => {
  const dir = tempDir("colony-auth-");
  let server: RunningServer;
  let admin: string;
  after(async () => {
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  const makeToken = async (role: string, name = `${role}-token`) => {
    const res = await http(`${server.url}/api/tokens`, {
      headers: { authorization: `Bearer ${admin}` },
      json: { role, name },
    });
    assert.equal(res.status, 201, res.text);
    return res.json<TokenJson>();
  };

  before(async () => {
    server = await startServer(testConfig(dir.path), { ...quiet, routes });
    admin = readFileSync(server.adminTokenFile!, "utf8").trim();
  });

  it("writes the first admin token to a 0600 file in the data dir, and only the hash to the store", async () => {
    assert.equal(server.adminTokenCreated, true);
    assert.equal(server.adminTokenFile, `${dir.path}/data/admin.token`);
    assert.equal(statSync(server.adminTokenFile).mode & 0o777, 0o600);
    assert.match(admin, /^colony_[A-Za-z0-9_-]{43}$/);
    const db = readFileSync(`${dir.path}/data/colony.db`);
    const wal = readFileSync(`${dir.path}/data/colony.db-wal`);
    assert.ok(!db.includes(admin) && !wal.includes(admin), "the token itself is never stored");
    const info = JSON.parse(readFileSync(`${dir.path}/data/server.json`, "utf8")) as Record<
      string,
      unknown
    >;
    assert.equal(info.url, server.url);
    assert.equal(info.pid, process.pid);
    assert.equal(info.adminTokenFile, server.adminTokenFile);
    assert.ok(!JSON.stringify(info).includes(admin));
  });

  it("answers 401 without a token, with an unknown one and with a blank one", async () => {
    const none = await http(`${server.url}/api/tokens`);
    assert.equal(none.status, 401);
    assert.equal(none.json<{ error: { code: string } }>().error.code, "COLONY_UNAUTHENTICATED");
    assert.match(none.headers["www-authenticate"] ?? "", /Bearer/);
    assert.match(none.text, /Authorization header/);
    for (const authorization of [
      "colony_unknown",
      `Bearer colony_${"x".repeat(43)}`,
      "Bearer",
      "x".repeat(5000),
    ]) {
      const res = await http(`${server.url}/test/reader`, { headers: { authorization } });
      assert.equal(res.status, 401, authorization.slice(0, 20));
      assert.match(res.text, /unknown or revoked/);
    }
    const blank = await http(`${server.url}/test/reader`, { headers: { authorization: "  " } });
    assert.equal(blank.status, 401);
  });

  it("accepts the token bare (the whole header, as seed 003 sends it) or as Bearer", async () => {
    const writer = await makeToken("writer", "ci");
    for (const authorization of [
      writer.token!,
      `Bearer ${writer.token!}`,
      `bearer  ${writer.token!}`,
    ]) {
      const res = await http(`${server.url}/test/writer`, {
        method: "POST",
        headers: { authorization },
      });
      assert.equal(res.status, 200, `${authorization.slice(0, 8)}: ${res.text}`);
      assert.deepEqual(res.json(), {
        principal: { name: "ci", role: "writer", via: "token", tokenId: writer.id },
      });
    }
  });

  it("answers 403 when the role is too low, naming the role needed", async () => {
    const reader = await makeToken("reader");
    const writer = await makeToken("writer");
    const ant = await makeToken("ant");
    const as = (token: TokenJson, path: string, method = "GET") =>
      http(`${server.url}${path}`, { method, headers: { authorization: token.token! } });

    assert.equal((await as(reader, "/test/reader")).status, 200);
    const denied = await as(reader, "/test/writer", "POST");
    assert.equal(denied.status, 403);
    assert.equal(denied.json<{ error: { code: string } }>().error.code, "COLONY_FORBIDDEN");
    assert.match(denied.text, /needs role writer/);
    assert.equal((await as(reader, "/api/tokens")).status, 403);
    assert.equal((await as(writer, "/test/reader")).status, 200);
    assert.equal((await as(writer, "/test/writer", "POST")).status, 200);
    assert.equal((await as(writer, "/api/tokens")).status, 403);
    assert.equal((await as(writer, "/test/admin")).status, 403);
    // ant tokens only open /ws/ants: not even reading the API.
    assert.equal((await as(ant, "/test/reader")).status, 403);
    // Health needs no token at all.
    assert.equal((await http(`${server.url}/api/health`)).status, 200);
  });

  it("creates, lists and revokes tokens over HTTP; a revoked token is refused at once", async () => {
    const made = await makeToken("reader", "dashboard");
    assert.match(made.id, /^tok_[A-Za-z0-9]{8}$/);
    assert.match(made.token!, /^colony_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(Object.keys(made).sort(), ["created_at", "id", "name", "role", "token"]);

    // Used once, so the list shows when.
    const use = await http(`${server.url}/test/reader`, {
      headers: { authorization: made.token! },
    });
    assert.equal(use.status, 200);
    const list = await http(`${server.url}/api/tokens`, { headers: { authorization: admin } });
    assert.equal(list.status, 200);
    const items = list.json<{ items: TokenJson[] }>().items;
    const listed = items.find((t) => t.id === made.id)!;
    assert.equal(listed.name, "dashboard");
    assert.equal(listed.role, "reader");
    assert.equal(listed.revoked_at, null);
    assert.ok(listed.last_used_at !== null, "last use recorded");
    assert.equal(items[0]?.name, "admin");
    for (const item of items) {
      assert.equal(item.token, undefined, "a list never shows tokens");
      assert.ok(!("hash" in item));
    }
    assert.ok(!list.text.includes(made.token!) && !list.text.includes(admin));

    const revoked = await http(`${server.url}/api/tokens/${made.id}`, {
      method: "DELETE",
      headers: { authorization: admin },
    });
    assert.equal(revoked.status, 200, revoked.text);
    assert.ok(revoked.json<TokenJson>().revoked_at);
    // The token was cached by the request above; the revocation clears the cache.
    const after = await http(`${server.url}/test/reader`, {
      headers: { authorization: made.token! },
    });
    assert.equal(after.status, 401);
    const relisted = await http(`${server.url}/api/tokens`, { headers: { authorization: admin } });
    assert.ok(
      relisted.json<{ items: TokenJson[] }>().items.find((t) => t.id === made.id)?.revoked_at,
    );

    const unknown = await http(`${server.url}/api/tokens/tok_nosuch00`, {
      method: "DELETE",
      headers: { authorization: admin },
    });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json<{ error: { code: string } }>().error.code, "COLONY_UNKNOWN_TOKEN");
  });

  it("validates token requests against the schema in /api/openapi.json", async () => {
    const post = (json: unknown) =>
      http(`${server.url}/api/tokens`, { headers: { authorization: admin }, json });
    const root = await post({ role: "root", name: "x" });
    assert.equal(root.status, 400);
    assert.match(root.text, /role/);
    const extra = await post({ role: "reader", name: "x", hash: "abc" });
    assert.equal(extra.status, 400);
    assert.match(extra.text, /unknown field 'hash'/);
    assert.equal((await post({ role: "reader" })).status, 400);
    assert.equal((await post({ role: "reader", name: "" })).status, 400);

    const doc = (await http(`${server.url}/api/openapi.json`)).json<{
      paths: Record<string, Record<string, unknown>>;
    }>();
    assert.ok(doc.paths["/api/tokens"]?.post && doc.paths["/api/tokens"]?.get);
    assert.ok(doc.paths["/api/tokens/{id}"]?.delete);
    const schema = JSON.stringify(doc.paths["/api/tokens"]?.post);
    assert.match(schema, /"additionalProperties":false/);
  });

  it("does not recreate the admin token on the next start, and old tokens still work", async () => {
    const reader = await makeToken("reader", "survivor");
    const before = readFileSync(server.adminTokenFile!, "utf8");
    const mtime = statSync(server.adminTokenFile!).mtimeMs;
    await server.close({ graceMs: 0 });
    assert.throws(() => statSync(`${dir.path}/data/server.json`), /ENOENT/, "server.json removed");

    server = await startServer(testConfig(dir.path), { ...quiet, routes });
    assert.equal(server.adminTokenCreated, false);
    assert.equal(readFileSync(server.adminTokenFile!, "utf8"), before);
    assert.equal(statSync(server.adminTokenFile!).mtimeMs, mtime);
    const res = await http(`${server.url}/test/reader`, {
      headers: { authorization: reader.token! },
    });
    assert.equal(res.status, 200);
    assert.equal(
      (await http(`${server.url}/api/tokens`, { headers: { authorization: admin } })).status,
      200,
    );

    // A removed file is not rewritten while an admin token exists: it is not a reset.
    await server.close({ graceMs: 0 });
    rmSync(`${dir.path}/data/admin.token`);
    server = await startServer(testConfig(dir.path), { ...quiet, routes });
    assert.equal(server.adminTokenCreated, false);
    assert.throws(() => statSync(`${dir.path}/data/admin.token`), /ENOENT/);
    assert.equal(
      (await http(`${server.url}/api/tokens`, { headers: { authorization: admin } })).status,
      200,
    );
  });
});

describe("server with --insecure-no-auth", () => {
  it("lets anyone in as admin and writes no admin token", async () => {
    const dir = tempDir("colony-noauth-");
    const server = await startServer(
      testConfig(dir.path, { overrides: { insecureNoAuth: true } }),
      { ...quiet, routes },
    );
    try {
      assert.equal(server.adminTokenFile, undefined);
      assert.throws(() => statSync(`${dir.path}/data/admin.token`), /ENOENT/);
      const res = await http(`${server.url}/test/admin`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), {
        principal: { name: "anonymous", role: "admin", via: "none" },
      });
      assert.equal((await http(`${server.url}/api/tokens`)).status, 200);
    } finally {
      await server.close({ graceMs: 0 });
      dir.remove();
    }
  });

  it("says so loudly on stderr when started from the command line", async () => {
    const dir = tempDir("colony-noauth-cli-");
    const run = startCli(["server", "--insecure-no-auth", "--port", "0", "--data-dir", dir.path]);
    try {
      await waitUntil("the server to start", () => /listening on/.test(run.stdout()));
      run.child.kill("SIGTERM");
      const result = await run.result;
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stderr,
        /WARNING: authentication is OFF \(--insecure-no-auth\)\. Anyone who can reach 127\.0\.0\.1:\d+ \(any user or program on this machine\) can run any command as user '[^']+'/,
      );
      assert.doesNotMatch(result.stdout, /admin token/);
    } finally {
      run.child.kill("SIGKILL");
      dir.remove();
    }
  });

  it("refuses a second server on a data dir whose server is alive in another process", async () => {
    const dir = tempDir("colony-second-");
    try {
      const config = testConfig(dir.path);
      const { mkdirSync, writeFileSync } = await import("node:fs");
      mkdirSync(config.dataDir, { recursive: true });
      // The parent of this test process is a live node process: it stands for the other server.
      writeFileSync(
        `${config.dataDir}/server.json`,
        JSON.stringify({
          url: "http://127.0.0.1:1",
          pid: process.ppid,
          nodeId: "x",
          startedAt: "",
        }),
      );
      await assert.rejects(startServer(config, quiet), /another colony server \(pid \d+/);
      // A server.json left by a crash (dead pid) does not stop a start.
      writeFileSync(
        `${config.dataDir}/server.json`,
        JSON.stringify({ url: "http://127.0.0.1:1", pid: 2 ** 22 + 7, nodeId: "x", startedAt: "" }),
      );
      const server = await startServer(config, quiet);
      await server.close({ graceMs: 0 });
    } finally {
      dir.remove();
    }
  });
});
