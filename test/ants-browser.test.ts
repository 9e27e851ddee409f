/**
 * The seed's browser worker in a real headless Chromium: the seed's snippet runs as it
 * is in a page that defines only `uri` (the server and the token, in `?authorization=`
 * since browsers cannot set WebSocket headers); the seed's `web-job` (method WEBSOCKET,
 * tags web and js) is then completed by it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { startAntServer, waitForAnt, type AntTestServer } from "./support/ants.ts";
import { browserMissing, launchBrowser, type Browser } from "./support/browser.ts";

const skip = browserMissing();

describe("the seed's browser worker in Chromium", { skip }, () => {
  let s: AntTestServer;
  let page: Server;
  let pageUrl: string;
  let browser: Browser;
  const problems: string[] = [];

  before(async () => {
    s = await startAntServer();
    const snippet = readFileSync(
      new URL("./fixtures/seed/web-worker.js.txt", import.meta.url),
      "utf8",
    );
    const uri = `${s.wsUrl}?authorization=${encodeURIComponent(s.antToken)}`;
    const html =
      `<!doctype html><html><head><title>sample-web</title></head><body><script>\n` +
      `const uri = ${JSON.stringify(uri)};\n${snippet}</script></body></html>\n`;
    // The page comes from its own origin, as a worker page would.
    page = createServer((_req, res) =>
      res.writeHead(200, { "content-type": "text/html" }).end(html),
    );
    await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
    pageUrl = `http://127.0.0.1:${(page.address() as AddressInfo).port}/`;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    page?.closeAllConnections();
    await new Promise((resolve) => page?.close(resolve));
    await s?.close();
  });

  it("registers from the page and completes the seed's web-job", async () => {
    const tab = await browser.context.newPage();
    tab.on("pageerror", (e) => problems.push(String(e)));
    tab.on("console", (m) => {
      if (m.type() === "error") problems.push(m.text());
    });
    await tab.goto(pageUrl);
    await waitForAnt(s, "sample-web");
    const yaml = readFileSync(new URL("./fixtures/seed/web-job.yaml", import.meta.url), "utf8");
    for (let i = 0; i < 3; i++) {
      const job = await s.submit(yaml);
      const { job: done, tasks } = await s.finished(job.id);
      assert.equal(done.state, "COMPLETED", JSON.stringify(tasks));
      assert.equal(tasks[0]!.handle?.ant_id, "sample-web");
    }
    const view = await s.ants();
    const ant = view.items.find((a) => a.ant_id === "sample-web") as Record<string, unknown>;
    assert.deepEqual(ant.tags, ["js", "web"]);
    assert.equal(ant.dispatched, 3);
    assert.deepEqual(problems, []);
    await tab.close();
  });
});
