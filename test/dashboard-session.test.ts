/**
 * Browser auth of the real server, over HTTP as a browser would do it: a token traded
 * for an HttpOnly, SameSite=Strict session cookie; reads with the cookie; changes
 * refused without the CSRF header and accepted with it; logout ending the session; the
 * one-time login link working once; a revoked token ending its sessions. And the
 * dashboard's static files: cache headers, ETags, compression, and the page that says
 * how to build it when web/dist is missing.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createDashboardRoutes, dashboardRoutes } from "../src/server/dashboard/static.ts";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { tempDir } from "./support/cli.ts";
import { http, testConfig } from "./support/server-harness.ts";

function cookiesOf(setCookie: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of setCookie ?? []) {
    const [pair] = c.split(";");
    const eq = pair!.indexOf("=");
    out[pair!.slice(0, eq)] = decodeURIComponent(pair!.slice(eq + 1));
  }
  return out;
}

describe("dashboard sessions", () => {
  const dir = tempDir("colony-session-");
  let server: RunningServer;
  let admin: string;

  before(async () => {
    server = await startServer(testConfig(dir.path), { log: () => undefined });
    admin = readFileSync(server.adminTokenFile!, "utf8").trim();
  });
  after(async () => {
    await server?.close({ graceMs: 0 });
    dir.remove();
  });

  async function login(token: string) {
    const res = await http(`${server.url}/api/session`, { json: { token } });
    assert.equal(res.status, 201, res.text);
    const setCookie = res.headers["set-cookie"]!;
    const session = setCookie.find((c) => c.startsWith("colony_session="))!;
    assert.match(session, /HttpOnly/);
    assert.match(session, /SameSite=Strict/);
    assert.match(session, /Path=\//);
    const csrfCookie = setCookie.find((c) => c.startsWith("colony_csrf="))!;
    assert.doesNotMatch(csrfCookie, /HttpOnly/, "the page must read the CSRF cookie");
    const cookies = cookiesOf(setCookie);
    const body = res.json<{ csrf_token: string; role: string; name: string }>();
    assert.equal(body.csrf_token, cookies.colony_csrf);
    assert.ok(!res.text.includes(token), "the token is not echoed");
    return {
      cookie: `colony_session=${cookies.colony_session}; colony_csrf=${cookies.colony_csrf}`,
      csrf: body.csrf_token,
      body,
    };
  }

  it("trades a token for a cookie session; reads work, changes need the CSRF header", async () => {
    const s = await login(admin);
    assert.equal(s.body.role, "admin");
    const me = await http(`${server.url}/api/session`, { headers: { cookie: s.cookie } });
    assert.equal(me.status, 200);
    assert.equal(me.json<{ via: string }>().via, "session");
    const list = await http(`${server.url}/api/job-requests`, { headers: { cookie: s.cookie } });
    assert.equal(list.status, 200);

    const submit = { definition: "job_type: s\ntasks:\n- task_type: a\n  script: [true]\n" };
    const forged = await http(`${server.url}/api/job-requests`, {
      headers: { cookie: s.cookie },
      json: submit,
    });
    assert.equal(forged.status, 403);
    assert.equal(forged.json<{ error: { code: string } }>().error.code, "COLONY_CSRF");
    const wrong = await http(`${server.url}/api/job-requests`, {
      headers: { cookie: s.cookie, "x-colony-csrf": "x".repeat(43) },
      json: submit,
    });
    assert.equal(wrong.status, 403);
    const ok = await http(`${server.url}/api/job-requests`, {
      headers: { cookie: s.cookie, "x-colony-csrf": s.csrf },
      json: submit,
    });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.json<{ submitted_by: string }>().submitted_by, "admin");
  });

  it("refuses bad tokens and ant tokens; logout ends the session", async () => {
    const bad = await http(`${server.url}/api/session`, { json: { token: "colony_nope" } });
    assert.equal(bad.status, 401);
    const ant = await http(`${server.url}/api/tokens`, {
      headers: { authorization: admin },
      json: { role: "ant", name: "an-ant" },
    });
    const antLogin = await http(`${server.url}/api/session`, {
      json: { token: ant.json<{ token: string }>().token },
    });
    assert.equal(antLogin.status, 403);

    const s = await login(admin);
    const noCsrf = await http(`${server.url}/api/session`, {
      method: "DELETE",
      headers: { cookie: s.cookie },
    });
    assert.equal(noCsrf.status, 403, "logout is a change too");
    const out = await http(`${server.url}/api/session`, {
      method: "DELETE",
      headers: { cookie: s.cookie, "x-colony-csrf": s.csrf },
    });
    assert.equal(out.status, 204);
    assert.match(out.headers["set-cookie"]!.join("\n"), /colony_session=; .*Max-Age=0/);
    const after = await http(`${server.url}/api/job-requests`, { headers: { cookie: s.cookie } });
    assert.equal(after.status, 401);
    assert.equal(after.json<{ error: { code: string } }>().error.code, "COLONY_SESSION_ENDED");
  });

  it("a session dies with its token", async () => {
    const made = await http(`${server.url}/api/tokens`, {
      headers: { authorization: admin },
      json: { role: "reader", name: "short-lived" },
    });
    const { id, token } = made.json<{ id: string; token: string }>();
    const s = await login(token);
    const read = await http(`${server.url}/api/job-requests`, { headers: { cookie: s.cookie } });
    assert.equal(read.status, 200);
    const write = await http(`${server.url}/api/job-requests`, {
      headers: { cookie: s.cookie, "x-colony-csrf": s.csrf },
      json: { job_type: "nope" },
    });
    assert.equal(write.status, 403, "a reader's session is a reader");
    await http(`${server.url}/api/tokens/${id}`, {
      method: "DELETE",
      headers: { authorization: admin },
    });
    // Sessions re-check their token every 2 s; ask again until it is seen revoked.
    const until = Date.now() + 8000;
    let status = 200;
    while (status === 200 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await http(`${server.url}/api/job-requests`, { headers: { cookie: s.cookie } }))
        .status;
    }
    assert.equal(status, 401);
  });

  it("the printed one-time login link works once", async () => {
    assert.match(server.loginUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+\/login\?once=[\w-]{43}$/);
    const first = await http(server.loginUrl!);
    assert.equal(first.status, 303);
    assert.equal(first.headers.location, "/#/jobs");
    assert.equal(first.headers["referrer-policy"], "no-referrer");
    const cookies = cookiesOf(first.headers["set-cookie"]);
    const me = await http(`${server.url}/api/session`, {
      headers: { cookie: `colony_session=${cookies.colony_session}` },
    });
    assert.equal(me.status, 200);
    assert.equal(me.json<{ role: string }>().role, "admin");
    const again = await http(server.loginUrl!);
    assert.equal(again.status, 303);
    assert.equal(again.headers.location, "/#/login/expired");
    assert.equal(again.headers["set-cookie"], undefined);

    const link = await http(`${server.url}/api/login-links`, {
      method: "POST",
      headers: { authorization: admin },
    });
    assert.equal(link.status, 201);
    const fresh = await http(link.json<{ url: string }>().url);
    assert.equal(fresh.headers.location, "/#/jobs");
  });
});

describe("dashboard static files", () => {
  const dir = tempDir("colony-static-");
  const dist = join(dir.path, "dist");
  let server: RunningServer;
  let missing: RunningServer;

  before(async () => {
    mkdirSync(join(dist, "assets"), { recursive: true });
    writeFileSync(
      join(dist, "index.html"),
      `<!doctype html><title>colony</title><script type="module" src="/assets/app-abc123.js"></script>${" ".repeat(600)}`,
    );
    writeFileSync(join(dist, "assets", "app-abc123.js"), `console.log("colony");\n`.repeat(100));
    const routes = ALL_ROUTES.filter((r) => r !== dashboardRoutes);
    server = await startServer(testConfig(join(dir.path, "a")), {
      log: () => undefined,
      routes: [...routes, createDashboardRoutes({ dir: dist })],
    });
    missing = await startServer(testConfig(join(dir.path, "b")), {
      log: () => undefined,
      routes: [...routes, createDashboardRoutes({ dir: join(dir.path, "nothing") })],
    });
  });
  after(async () => {
    await server?.close({ graceMs: 0 });
    await missing?.close({ graceMs: 0 });
    dir.remove();
  });

  it("serves the page revalidated, assets immutable, compressed, with ETags", async () => {
    // Compressed copies are made in the background at start: ask until they are there.
    let page = await http(`${server.url}/`, { headers: { "accept-encoding": "gzip" } });
    for (let i = 0; i < 100 && page.headers["content-encoding"] !== "gzip"; i++) {
      await new Promise((r) => setTimeout(r, 20));
      page = await http(`${server.url}/`, { headers: { "accept-encoding": "gzip" } });
    }
    assert.equal(page.status, 200);
    assert.equal(page.headers["cache-control"], "no-cache");
    assert.equal(page.headers["content-encoding"], "gzip");
    assert.match(String(page.headers["content-security-policy"]), /default-src 'self'/);
    assert.equal(page.headers["x-frame-options"], "DENY");
    const etag = page.headers.etag!;
    const again = await http(`${server.url}/`, { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);

    const asset = await http(`${server.url}/assets/app-abc123.js`);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.match(asset.headers["content-type"] ?? "", /text\/javascript/);
    assert.equal(asset.text, `console.log("colony");\n`.repeat(100));
    const none = await http(`${server.url}/assets/nope.js`);
    assert.equal(none.status, 404);
    const api404 = await http(`${server.url}/api/nope`);
    assert.equal(api404.json<{ error: { code: string } }>().error.code, "COLONY_NOT_FOUND");
  });

  it("serves brotli and gzip that decode to the file", async () => {
    const res = await fetch(`${server.url}/assets/app-abc123.js`, {
      headers: { "accept-encoding": "br, gzip" },
    });
    assert.equal(res.headers.get("content-encoding"), "br");
    assert.equal(await res.text(), `console.log("colony");\n`.repeat(100));
    const raw = await http(`${server.url}/assets/app-abc123.js`, {
      headers: { "accept-encoding": "gzip" },
    });
    assert.equal(raw.headers["content-encoding"], "gzip");
  });

  it("says how to build the dashboard when web/dist is missing", async () => {
    const res = await http(`${missing.url}/`);
    assert.equal(res.status, 503);
    assert.match(res.text, /npm run build:web/);
  });
});
