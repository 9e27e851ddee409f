/**
 * The dashboard in a real headless Chromium against a real `colony server` child
 * process (auth on, SQLite, web/dist as built by `npm run build:web`):
 *
 * 1. cold first load of the jobs page (fresh profile, empty cache, 100 jobs in the
 *    store): from navigation start to its table showing, timed in the page; baseline:
 *    the same for a one-line HTML page from a plain node:http server on loopback;
 * 2. from a task state change recorded by the server (the event's `at`) to the node of
 *    the open job page changing colour, p50/p99 over a job of 1 + 100 tasks; baseline:
 *    the same events' arrival at a plain Node SSE client;
 * 3. following a task that writes 50 MB as fast as it can: main-thread long tasks while
 *    the page follows, and how long after the last line was written it is on screen;
 *    baseline: a Node client following the same output over HTTP.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { launchBrowser } from "../test/support/browser.ts";
import { startServerProcess, type BenchServer } from "./server-process.ts";
import { percentile, type BenchLine } from "./support.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DIST = join(ROOT, "web", "dist");

function ensureBuilt(): void {
  if (existsSync(join(DIST, "index.html"))) return;
  const r = spawnSync(process.execPath, [join(ROOT, "scripts/build-web.ts")], { stdio: "inherit" });
  if (r.status !== 0) throw new Error("npm run build:web failed");
}

/** Gzip size of what a first visit downloads (index.html and every asset). */
export function bundleGzipBytes(): { raw: number; gzip: number } {
  let raw = 0;
  let gzip = 0;
  const files = [
    join(DIST, "index.html"),
    ...readdirSync(join(DIST, "assets")).map((f) => join(DIST, "assets", f)),
  ];
  for (const f of files) {
    const body = readFileSync(f);
    raw += body.length;
    gzip += gzipSync(body, { level: 9 }).length;
  }
  return { raw, gzip };
}

async function api<T>(server: BenchServer, path: string, json?: unknown): Promise<T> {
  const res = await fetch(server.url + path, {
    method: json === undefined ? "GET" : "POST",
    headers: { authorization: server.token, "content-type": "application/json" },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function sessionCookie(
  server: BenchServer,
): Promise<Array<{ name: string; value: string; url: string }>> {
  const res = await fetch(server.url + "/api/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: server.token }),
  });
  return res.headers.getSetCookie().map((c) => {
    const pair = c.split(";")[0]!;
    const eq = pair.indexOf("=");
    return {
      name: pair.slice(0, eq),
      value: decodeURIComponent(pair.slice(eq + 1)),
      url: server.url,
    };
  });
}

async function waitDone(server: BenchServer, id: number): Promise<void> {
  for (;;) {
    const job = await api<{ state: string }>(server, `/api/job-requests/${id}`);
    if (["COMPLETED", "FAILED", "CANCELLED"].includes(job.state)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A Node SSE client on /api/events that records each task:state event's arrival. */
function listen(server: BenchServer): {
  arrivals: Map<string, { at: number; got: number }>;
  close(): void;
} {
  const arrivals = new Map<string, { at: number; got: number }>();
  const abort = new AbortController();
  void (async () => {
    const res = await fetch(server.url + "/api/events?types=task", {
      headers: { authorization: server.token },
      signal: abort.signal,
    });
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const got = Date.now();
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (!data || !block.includes("event: task:state")) continue;
        const e = JSON.parse(data) as { task_type: string; state: string; at: string };
        arrivals.set(`${e.task_type}:${e.state}`, { at: Date.parse(e.at), got });
      }
    }
  })().catch(() => undefined);
  return { arrivals, close: () => abort.abort() };
}

export async function dashboardBench(): Promise<BenchLine[]> {
  ensureBuilt();
  const lines: BenchLine[] = [];
  const bundle = bundleGzipBytes();
  lines.push({
    name: "dashboard bundle (first visit)",
    value: `${(bundle.gzip / 1024).toFixed(1)} KiB gzip (${(bundle.raw / 1024).toFixed(1)} KiB raw)`,
  });

  const server = await startServerProcess("max_parallel_tasks: 8\n");
  const blank = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>x</title><p id=ok>hello</p>");
  });
  await new Promise<void>((r) => blank.listen(0, "127.0.0.1", r));
  const blankUrl = `http://127.0.0.1:${(blank.address() as AddressInfo).port}/`;
  try {
    // -- 1. cold first load ---------------------------------------------------------
    const yaml = "job_type: noop\ntasks:\n- task_type: a\n  script: [true]\n";
    await fetch(server.url + "/api/job-definitions", {
      method: "POST",
      headers: { authorization: server.token, "content-type": "application/yaml" },
      body: yaml,
    });
    let last = 0;
    for (let i = 0; i < 100; i++)
      last = (await api<{ id: number }>(server, "/api/job-requests", { job_type: "noop" })).id;
    await waitDone(server, last);
    // Timed in the page, from its navigation start (browser start-up is not counted).
    const shownAt = (selector: string) =>
      `new MutationObserver(() => { if (!window.shownAt && document.querySelector(${JSON.stringify(selector)})) window.shownAt = performance.now(); }).observe(document, { childList: true, subtree: true });`;
    const loads: number[] = [];
    const blanks: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 5; i++) {
      const b = await launchBrowser();
      try {
        await b.context.addCookies(await sessionCookie(server));
        const page = b.context.pages()[0] ?? (await b.context.newPage());
        await page.addInitScript(shownAt("tr[data-job]"));
        await page.goto(server.url + "/#/jobs");
        await page.locator("tr[data-job]").first().waitFor();
        loads.push((await page.evaluate("window.shownAt")) as number);
        bytes = (await page.evaluate(
          "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')).reduce((n, e) => n + e.transferSize, 0)",
        )) as number;
        const other = await b.context.newPage();
        await other.addInitScript(shownAt("#ok"));
        await other.goto(blankUrl);
        await other.locator("#ok").waitFor();
        blanks.push((await other.evaluate("window.shownAt")) as number);
      } finally {
        await b.close();
      }
    }
    loads.sort((a, b) => a - b);
    blanks.sort((a, b) => a - b);
    const load = percentile(loads, 50);
    const base = percentile(blanks, 50);
    lines.push({
      name: "jobs page, cold first load",
      value: `${load.toFixed(0)} ms (median of 5; ${(bytes / 1024).toFixed(1)} KiB transferred incl. API)`,
      baseline: `blank page ${base.toFixed(0)} ms`,
      ratio: load / base,
    });

    // -- 2. state change -> page ------------------------------------------------------
    const b = await launchBrowser();
    const sse = listen(server);
    try {
      await b.context.addCookies(await sessionCookie(server));
      const page = b.context.pages()[0] ?? (await b.context.newPage());
      const fan = [
        "job_type: fan",
        "tasks:",
        "- task_type: root",
        "  script: [sleep 1]",
        "  on_completed:",
      ];
      for (let i = 0; i < 100; i++) fan.push(`    - t${i}`);
      for (let i = 0; i < 100; i++) fan.push(`- task_type: t${i}`, "  script: [sleep 0.02]");
      const job = await api<{ id: number }>(server, "/api/job-requests", {
        definition: fan.join("\n") + "\n",
      });
      await page.goto(`${server.url}/#/jobs/${job.id}`);
      await page.locator('g[data-task="t99"]').waitFor();
      await page.evaluate(`(() => {
        const seen = (window.seen = {});
        new MutationObserver((records) => {
          const now = Date.now();
          for (const r of records) {
            const el = r.target;
            seen[el.getAttribute("data-task") + ":" + el.getAttribute("data-state")] ??= now;
          }
        }).observe(document.querySelector("svg.dag"), { attributes: true, subtree: true, attributeFilter: ["data-state"] });
      })()`);
      await waitDone(server, job.id);
      await page.waitForTimeout(500);
      const seen = (await page.evaluate("window.seen")) as Record<string, number>;
      const toPage: number[] = [];
      const toNode: number[] = [];
      for (const [key, shown] of Object.entries(seen)) {
        const a = sse.arrivals.get(key);
        if (!a) continue;
        toPage.push(shown - a.at);
        toNode.push(a.got - a.at);
      }
      toPage.sort((x, y) => x - y);
      toNode.sort((x, y) => x - y);
      lines.push({
        name: `task state → page (${toPage.length} changes)`,
        value: `p50 ${percentile(toPage, 50).toFixed(0)} ms, p99 ${percentile(toPage, 99).toFixed(0)} ms`,
        baseline: `Node SSE client p50 ${percentile(toNode, 50).toFixed(0)} ms, p99 ${percentile(toNode, 99).toFixed(0)} ms`,
        ratio: Math.max(1, percentile(toPage, 50)) / Math.max(1, percentile(toNode, 50)),
      });
    } finally {
      sse.close();
      await b.close();
    }

    // -- 3. following 50 MB ------------------------------------------------------------
    const mb = Number(process.env.BENCH_DASHBOARD_MB ?? 50);
    const lineBytes = 64;
    const count = Math.round((mb * 1e6) / lineBytes);
    const writer = [
      "job_type: big",
      "tasks:",
      "- task_type: wait",
      "  script: [sleep 2]",
      "  on_completed: [big]",
      "- task_type: big",
      "  script:",
      // 64-byte lines: "line 0000001 " + padding; then the time the last line was written.
      `    - "seq -f 'line %07g xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' 1 ${count}"`,
      `    - 'echo "END $(date +%s%3N)"'`,
    ].join("\n");
    const browser = await launchBrowser();
    try {
      await browser.context.addCookies(await sessionCookie(server));
      const page = browser.context.pages()[0] ?? (await browser.context.newPage());
      const job = await api<{ id: number }>(server, "/api/job-requests", {
        definition: writer + "\n",
      });
      await page.goto(`${server.url}/#/jobs/${job.id}?task=big`);
      await page.locator('g[data-task="wait"]').waitFor();
      await page.evaluate(`(() => {
        window.longTasks = [];
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) window.longTasks.push(e.duration);
        }).observe({ type: "longtask", buffered: false });
        window.endShown = 0;
        new MutationObserver(() => {
          if (window.endShown) return;
          for (const el of document.querySelectorAll(".log-line")) {
            if (el.textContent.includes("END ")) window.endShown = Date.now();
          }
        }).observe(document.body, { childList: true, subtree: true, characterData: true });
      })()`);
      // Node baseline: a second follower of the same output over HTTP.
      const nodeFollow = (async () => {
        for (;;) {
          const view = await api<{ tasks: Array<{ task_type: string; id: string }> }>(
            server,
            `/api/job-requests/${job.id}`,
          );
          const t = view.tasks.find((x) => x.task_type === "big");
          if (t) {
            const res = await fetch(`${server.url}/api/task-executions/${t.id}/output?follow=1`, {
              headers: { authorization: server.token },
            });
            let tail = "";
            let got = 0;
            for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
              tail = (tail + Buffer.from(chunk).toString("latin1")).slice(-200);
              if (/END \d+/.test(tail)) got = Date.now();
            }
            return { got, written: Number(/END (\d+)/.exec(tail)?.[1]) };
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      await waitDone(server, job.id);
      const node = await nodeFollow;
      await page.locator(".log-line", { hasText: "END " }).waitFor({ timeout: 60_000 });
      const shown = (await page.evaluate("window.endShown")) as number;
      const longTasks = (await page.evaluate("window.longTasks")) as number[];
      const lag = shown - node.written;
      const total = longTasks.reduce((a, x) => a + x, 0);
      lines.push({
        name: `follow ${mb} MB: last line on screen`,
        value: `${lag} ms after written${lag <= 1000 ? " (≤ 1 s)" : " (over 1 s)"}`,
        baseline: `Node follower ${node.got - node.written} ms`,
        ratio: Math.max(1, lag) / Math.max(1, node.got - node.written),
        target: "≤ 1000 ms",
      });
      lines.push({
        name: `follow ${mb} MB: main-thread long tasks`,
        value: `${longTasks.length} (longest ${Math.round(Math.max(0, ...longTasks))} ms, ${Math.round(total)} ms in all)`,
      });
      const dom = (await page.evaluate("document.querySelectorAll('.log-line').length")) as number;
      const status = (await page.evaluate(
        "document.querySelector('.log-status').textContent",
      )) as string;
      lines.push({ name: `follow ${mb} MB: lines in the DOM`, value: `${dom} (of ${status})` });
    } finally {
      await browser.close();
    }
  } finally {
    blank.close();
    await server.close();
  }
  return lines;
}
