/**
 * The dashboard in a real headless Chromium (Debian's chromium via playwright-core)
 * against a real server running real processes, the dashboard built from the current
 * source: log in with a token and with the printed one-time link, submit a job from the
 * form and watch its DAG complete live, follow a task's output while it is written
 * (ANSI colours, virtualised lines), cancel a running job, see a parser error at its
 * line, the ants/units/schedules pages, keyboard navigation, a phone-width layout, and
 * no script error or CSP violation anywhere.
 *
 * Screenshots of every page are taken; with UPDATE_SCREENSHOTS=1 (npm run screenshots)
 * they are written to docs/screenshots/ for the README.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import type { Page } from "playwright-core";
import { createDashboardRoutes, dashboardRoutes } from "../src/server/dashboard/static.ts";
import { ALL_ROUTES } from "../src/server/routes.ts";
import { startServer, type RunningServer } from "../src/server/server.ts";
import { duration } from "../web/src/format.ts";
import { browserMissing, buildDashboard, launchBrowser, type Browser } from "./support/browser.ts";
import { ROOT, tempDir } from "./support/cli.ts";
import { http, testConfig } from "./support/server-harness.ts";

const skip = browserMissing();
/** How much wider than the window the page is (0: no sideways scrolling). */
const WIDER = "document.documentElement.scrollWidth - window.innerWidth";
const SHOTS = process.env.UPDATE_SCREENSHOTS
  ? join(ROOT, "docs", "screenshots")
  : mkdtempSync(join(tmpdir(), "colony-shots-"));

describe("dashboard in Chromium", { skip }, () => {
  const dir = tempDir("colony-browser-");
  let web: { dir: string; remove(): void };
  let server: RunningServer;
  let browser: Browser;
  let page: Page;
  let token: string;
  const problems: string[] = [];
  const flag = join(dir.path, "paint-done");

  const api = async <T>(path: string, json?: unknown): Promise<T> => {
    const res = await http(`${server.url}${path}`, {
      headers: { authorization: token },
      ...(json === undefined ? {} : { json }),
    });
    assert.ok(res.status < 300, `${path}: ${res.status} ${res.text}`);
    return res.json<T>();
  };
  const saveYaml = (yaml: string) =>
    http(`${server.url}/api/job-definitions`, {
      headers: { authorization: token, "content-type": "application/yaml" },
      body: yaml,
    });
  /** Evaluates browser-side code (a string: this file is type-checked without the DOM). */
  const inPage = <T = unknown>(code: string) => page.evaluate(code) as Promise<T>;
  /** Waits until browser-side `code` is true (polled: waitForFunction would need eval, which the CSP forbids). */
  const until = async (code: string, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!(await inPage<boolean>(code))) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${code}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });
  const go = async (hash: string) => {
    await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    web = buildDashboard();
    const routes = ALL_ROUTES.filter((r) => r !== dashboardRoutes);
    const yaml = "work_types:\n- work_type: shout\n  command: tr\n  params: a-z A-Z\n";
    server = await startServer(testConfig(dir.path, { yaml }), {
      log: () => undefined,
      routes: [...routes, createDashboardRoutes({ dir: web.dir })],
    });
    token = readFileSync(server.adminTokenFile!, "utf8").trim();
    assert.equal(
      (await saveYaml(readFileSync(join(ROOT, "examples/hello-dag.yaml"), "utf8"))).status,
      201,
    );
    assert.equal(
      (
        await saveYaml(`job_type: paint
description: coloured output, then 20 000 lines at once, then waits for a signal
tasks:
- task_type: paint
  environment: {DONE: ${flag}}
  script:
    - 'for i in $(seq 1 30); do printf "\\033[31mred %s\\033[0m \\033[1;32mgreen\\033[0m line %s\\n" $i $i; sleep 0.03; done'
    - 'seq 1 20000 | sed "s/^/bulk /"'
    - 'while [ ! -e "$DONE" ]; do sleep 0.05; done'
    - echo "the end"
`)
      ).status,
      201,
    );
    assert.equal(
      (
        await saveYaml(
          "job_type: sleepy\ndescription: naps for a minute\ntasks:\n- task_type: nap\n  script: [sleep 60]\n",
        )
      ).status,
      201,
    );
    assert.equal(
      (
        await saveYaml(
          "job_type: flaky\ntasks:\n- task_type: try\n  script: ['echo trying; exit 3']\n",
        )
      ).status,
      201,
    );
    assert.equal(
      (
        await saveYaml(
          "job_type: nightly-report\ncron_trigger: '0 3 * * *'\ntasks:\n- task_type: a\n  script: [true]\n",
        )
      ).status,
      201,
    );
    // Some history for the jobs list.
    for (const t of ["flaky", "hello-dag"]) {
      const j = await api<{ id: number }>("/api/job-requests", { job_type: t });
      await server.runtime.engine.waitFor(j.id);
    }
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.setDefaultTimeout(15_000);
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      const text = m.text();
      // Refused calls (401 before login, 404 for absent features) are logged by the browser.
      if (m.type() === "error" && !text.startsWith("Failed to load resource")) problems.push(text);
    });
  });

  after(async () => {
    writeFileSync(flag, "");
    await browser?.close();
    await server?.close({ graceMs: 0 });
    web?.remove();
    dir.remove();
    if (!process.env.UPDATE_SCREENSHOTS) rmSync(SHOTS, { recursive: true, force: true });
  });

  it("logs in with a token (the page keeps no copy: an HttpOnly cookie does)", async () => {
    await page.goto(server.url + "/");
    await page.getByLabel("Token").waitFor();
    await shot("login");
    await page.getByLabel("Token").fill("colony_wrong");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: "unknown or revoked" }).waitFor();
    await page.getByLabel("Token").fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.locator("h1#jobs-title").waitFor();
    await page.locator('[data-live="live"]').waitFor();
    const cookies = await browser.context.cookies();
    const session = cookies.find((c) => c.name === "colony_session")!;
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(await inPage('document.cookie.includes("colony_session")'), false);
    assert.equal(await inPage('JSON.stringify(localStorage).includes("colony_")'), false);
  });

  it("logs out, and logs in again with the one-time link the server printed", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("Token").waitFor();
    assert.equal(
      (await browser.context.cookies()).some((c) => c.name === "colony_session" && c.value),
      false,
    );
    await page.goto(server.loginUrl!);
    await page.locator("h1#jobs-title").waitFor();
    assert.match(page.url(), /#\/jobs$/);
    await browser.context.clearCookies(); // as another browser would be
    await page.goto(server.loginUrl!); // used: it says so
    await page.getByText("That login link was used already").waitFor();
    const fresh = await api<{ url: string }>("/api/login-links", {});
    await page.goto(fresh.url);
    await page.locator("h1#jobs-title").waitFor();
  });

  it("lists jobs and shows new ones live", async () => {
    await page.locator('[data-testid="jobs"] tr[data-job]').first().waitFor();
    const before = await page.locator("tr[data-job]").count();
    const j = await api<{ id: number }>("/api/job-requests", { job_type: "flaky" });
    await page.locator(`tr[data-job="${j.id}"][data-state="FAILED"]`).waitFor();
    assert.equal(await page.locator("tr[data-job]").count(), before + 1);
    await shot("jobs");
  });

  it("submits a job from the form and watches its DAG complete live", async () => {
    await go("#/definitions");
    await page.locator('tr[data-type="hello-dag"]').waitFor();
    await shot("definitions");
    await page.locator('tr[data-type="hello-dag"]').getByRole("link", { name: "Run…" }).click();
    const name = page.getByLabel("Name");
    await name.fill("browser");
    await shot("definition");
    // Record every state the graph's nodes show, from their first drawing on.
    await inPage(`(() => {
      const seen = (window.seen = []);
      const note = (el) => seen.push(el.getAttribute("data-task") + ":" + el.getAttribute("data-state"));
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.type === "attributes") note(r.target);
          for (const n of r.addedNodes) if (n instanceof Element) n.querySelectorAll("g[data-task]").forEach(note);
        }
      }).observe(document.body, { attributes: true, childList: true, subtree: true, attributeFilter: ["data-state"] });
    })()`);
    await page.getByRole("button", { name: "Submit job" }).click();
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = Number(/#\/jobs\/(\d+)/.exec(page.url())![1]);
    for (const t of ["greet", "count", "letters", "report", "cleanup"])
      await page.locator(`g[data-task="${t}"][data-state="COMPLETED"]`).waitFor();
    await page.locator(`section[data-job="${id}"][data-state="COMPLETED"]`).waitFor();
    const seen = await inPage<string[]>("window.seen");
    // Without a reload, the nodes went through running states to COMPLETED.
    for (const t of ["count", "letters", "report"]) {
      const states = seen.filter((s) => s.startsWith(`${t}:`)).map((s) => s.split(":")[1]);
      assert.equal(states.at(-1), "COMPLETED", seen.join(" "));
      assert.ok(
        states.some((s) => s !== "COMPLETED"),
        `${t} was seen before it completed: ${seen.join(" ")}`,
      );
    }
    const view = await api<{
      params: Record<string, unknown>;
      started_at: string;
      ended_at: string;
    }>(`/api/job-requests/${id}`);
    assert.deepEqual(view.params, { Name: "browser" });
    await page.locator('tr[data-task="greet"] a').click();
    await page.locator(".log-line", { hasText: "hello, browser" }).waitFor();
    await page.waitForTimeout(600); // the reconciling refetch
    assert.equal(
      await page.locator("[data-duration]").textContent(),
      duration(Date.parse(view.ended_at) - Date.parse(view.started_at)),
    );
    await shot("job");
  });

  it("follows a task's output while it is written, colours rendered, lines virtualised", async () => {
    const j = await api<{ id: number }>("/api/job-requests", { job_type: "paint" });
    await go(`#/jobs/${j.id}?task=paint`);
    await page.locator(".log-line", { hasText: "line 5" }).waitFor();
    const job = await api<{ state: string }>(`/api/job-requests/${j.id}`);
    assert.equal(job.state, "EXECUTING", "seen while it was being written");
    const red = page.locator(".log-line span.a-f1", { hasText: "red 5" });
    await red.waitFor();
    assert.equal(
      await page.locator(".log-line span.a-f2.a-bold", { hasText: "green" }).first().isVisible(),
      true,
    );
    // 20 000 more lines arrive at once: the view follows the end, keeping few in the DOM.
    await page.locator(".log-line", { hasText: "bulk 20000" }).waitFor();
    const rows = await page.locator(".log-line").count();
    assert.ok(rows < 200, `${rows} lines in the DOM`);
    assert.match((await page.locator(".log-status").textContent()) ?? "", /20,030 lines/);
    writeFileSync(flag, "");
    await page.locator(".log-line", { hasText: "the end" }).waitFor();
    await page.locator('.log-status[data-ended="1"]').waitFor();
    // Scrolling to the top shows the first lines again (drawn on demand).
    await inPage('document.querySelector(".log-box").scrollTop = 0');
    await page.locator('.log-line[data-line="1"]', { hasText: "red 1" }).waitFor();
    await shot("output");
    await page.locator(".log-line", { hasText: "bulk 20000" }).waitFor({ state: "detached" });
  });

  it("cancels a running job", async () => {
    const j = await api<{ id: number }>("/api/job-requests", { job_type: "sleepy" });
    await go(`#/jobs/${j.id}`);
    await page.locator('g[data-task="nap"][data-state="EXECUTING"]').waitFor();
    await page.getByRole("button", { name: "Cancel job" }).click();
    await page.getByRole("button", { name: "Confirm cancel" }).click();
    await page.locator(`section[data-job="${j.id}"][data-state="CANCELLED"]`).waitFor();
    await page.locator('g[data-task="nap"][data-state="CANCELLED"]').waitFor();
    await page.getByRole("button", { name: "Restart" }).waitFor();
  });

  it("shows a parser error at its line", async () => {
    await go("#/definitions/new");
    const editor = page.getByLabel("definition YAML");
    await editor.fill("job_type: broken\ntasks:\n- task_type: a\n  scrpt: [echo a]\n");
    await page.getByRole("button", { name: "Save definition" }).click();
    await page.locator('.editor-gutter [data-error-line="4"]').waitFor();
    const alert = page.locator('[data-problem-line="4"]');
    assert.match(
      (await alert.textContent()) ?? "",
      /line 4, column 3.*unknown key 'scrpt'; did you mean 'script'\?/,
    );
    const caret = await inPage<number>(
      'document.activeElement.value.slice(0, document.activeElement.selectionStart).split("\\n").length',
    );
    assert.equal(caret, 4, "the caret is on the bad line");
    await shot("editor");
    // Fixed, it saves and shows the definition.
    await editor.fill("job_type: fixed\ntasks:\n- task_type: a\n  script: [echo a]\n");
    await page.getByRole("button", { name: "Save definition" }).click();
    await page.waitForURL(/#\/definitions\/fixed$/);
  });

  it("shows an ant appear when one connects, and leave", async () => {
    await go("#/ants");
    await page.locator("h1#ants-title").waitFor();
    await page.locator("tr[data-ant]").first().waitFor(); // the built-in ant
    const antToken = (
      await api<{ token: string }>("/api/tokens", { role: "ant", name: "browser-ant" })
    ).token;
    const socket = new WebSocket(server.url.replace(/^http/, "ws") + "/ws/ants", {
      headers: { authorization: `Bearer ${antToken}` },
    });
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    socket.send(
      JSON.stringify({
        ant_id: "gpu-ant-1",
        tags: ["gpu", "linux"],
        methods: ["SHELL"],
        max_capacity: 4,
      }),
    );
    const row = page.locator('tr[data-ant="gpu-ant-1"]');
    await row.waitFor();
    assert.match((await row.textContent()) ?? "", /gpu.*linux.*SHELL.*0 \/ 4.*connected/);
    // A task for a tag no ant has waits, and the page says why.
    assert.equal(
      (
        await saveYaml(
          "job_type: tpu\ntasks:\n- task_type: fit\n  method: WEBSOCKET\n  tags: [tpu]\n",
        )
      ).status,
      201,
    );
    const tpu = await api<{ id: number }>("/api/job-requests", { job_type: "tpu" });
    const waitingRow = page.locator('[data-testid="waiting"] tbody tr', { hasText: "fit" });
    await waitingRow.waitFor();
    // Its job is left PENDING (no ant serves its first task), linked from the row.
    assert.match(
      (await waitingRow.textContent()) ?? "",
      new RegExp(`#${tpu.id}.*WEBSOCKET.*tpu.*no connected ant serves it \\(job left pending\\)`),
    );
    assert.equal(await waitingRow.locator("a").getAttribute("href"), `#/jobs/${tpu.id}`);
    await shot("ants");
    await http(`${server.url}/api/job-requests/${tpu.id}/cancel`, {
      method: "POST",
      headers: { authorization: token },
    });
    await waitingRow.waitFor({ state: "detached" });
    socket.close();
    // A plain worker that leaves is gone at once (an agent would be kept a while, disconnected).
    await until(
      `!document.querySelector('tr[data-ant="gpu-ant-1"]') || document.querySelector('tr[data-ant="gpu-ant-1"]').textContent.includes("disconnected")`,
    );
  });

  it("shows schedules with their next firing; pause and resume (or that the server has none)", async () => {
    await go("#/schedules");
    const status = (
      await http(`${server.url}/api/schedules`, { headers: { authorization: token } })
    ).status;
    if (status === 404) {
      await page.locator('[data-unavailable="/api/schedules"]').waitFor();
    } else {
      const row = page.locator('tr[data-schedule="nightly-report"]');
      await row.waitFor();
      assert.match((await row.textContent()) ?? "", /0 3 \* \* \*.*03:00:00 \(in /);
      await row.getByRole("button", { name: "Pause" }).click();
      await row.getByRole("button", { name: "Resume" }).waitFor();
      assert.match((await row.textContent()) ?? "", /paused/);
      await row.getByRole("button", { name: "Resume" }).click();
      await row.getByRole("button", { name: "Pause" }).waitFor();
    }
    await shot("schedules");
  });

  it("shows units and their output", async () => {
    await go("#/units");
    const greet = page.locator("tr[data-unit]", { hasText: "greet" }).first();
    await greet.waitFor();
    assert.match((await greet.textContent()) ?? "", /Succeeded/);
    await greet.locator("a.row-link").click();
    await page.locator(".unit-output .log-line", { hasText: "hello, " }).waitFor();
    await shot("units");

    // Every task run is a unit: "work units" shows the work units alone.
    const unit = await api<{ id: string }>("/api/units", { work_type: "shout", stdin: "hi\n" });
    const filter = page.getByLabel("filter by kind");
    await filter.selectOption("work");
    const shout = page.locator(`tr[data-unit="${unit.id}"]`);
    await shout.waitFor();
    assert.match((await shout.textContent()) ?? "", /shout/);
    await until(`document.querySelectorAll("tr[data-unit]").length === 1`);
    await filter.selectOption("task");
    await greet.waitFor();
    assert.equal(await shout.count(), 0, "task runs only");
    await filter.selectOption("");
    await shout.waitFor();
  });

  it("is keyboard navigable", async () => {
    await go("#/jobs");
    await page.locator("h1#jobs-title").waitFor();
    await page.locator("body").click({ position: { x: 5, y: 300 } });
    await page.keyboard.press("g");
    await page.keyboard.press("d");
    await page.locator("h1#defs-title").waitFor();
    await page.keyboard.press("/");
    assert.equal(
      await inPage('document.activeElement?.getAttribute("aria-label")'),
      "filter definitions",
    );
    await page.keyboard.press("Escape");
    await page.locator("body").click({ position: { x: 5, y: 300 } });
    await page.keyboard.press("g");
    await page.keyboard.press("j");
    await page.locator("tr[data-job] a.row-link").first().waitFor();
    await page.keyboard.press("j");
    const focused = await inPage<string>(
      'document.activeElement?.closest("tr")?.getAttribute("data-job")',
    );
    assert.ok(focused, "j focuses the first job");
    await page.keyboard.press("Enter");
    await until(`location.hash === "#/jobs/${focused}"`);
    // Tab reaches the graph's nodes; Enter on one selects its task.
    await page.locator("g[data-task]").first().focus();
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("Enter");
    await until('location.hash.includes("?task=")');
    await page.keyboard.press("?");
    await page.getByRole("dialog", { name: "keyboard shortcuts" }).waitFor();
    await page.keyboard.press("Escape");
  });

  it("fits a phone", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const done = await api<{ items: Array<{ id: number; job_type: string }> }>(
      "/api/job-requests?job_type=hello-dag&limit=1",
    );
    await go(`#/jobs/${done.items[0]!.id}`);
    await page.locator('g[data-task="cleanup"]').waitFor();
    const overflow = await inPage<number>(WIDER);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than the phone`);
    await shot("job-phone");
    await go("#/jobs");
    await page.locator("tr[data-job]").first().waitFor();
    assert.ok((await inPage<number>(WIDER)) <= 1);
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it("ran without a script error or a CSP violation", () => {
    assert.deepEqual(problems, []);
  });
});
