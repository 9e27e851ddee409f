/**
 * A real headless Chromium for dashboard tests and benches: Debian's `chromium` package
 * driven by playwright-core (never a browser download), in a fresh user-data dir, and
 * the dashboard built from the current source into a temp dir.
 *
 * Without CI, a machine without /usr/bin/chromium skips the browser tests with a reason
 * (scripts/test-browser.sh installs it); under CI=true its absence fails the run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { ROOT } from "./cli.ts";

export const CHROMIUM = process.env.COLONY_TEST_CHROMIUM ?? "/usr/bin/chromium";
const CI = process.env.CI === "true" || process.env.CI === "1";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why browser tests cannot run here, or undefined when they can. */
export function browserMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `no Chromium at ${CHROMIUM} (install it with scripts/test-browser.sh, as root)`;
  if (CI) throw new Error(`CI=true but ${reason}`);
  return reason;
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(
  options: { width?: number; height?: number } = {},
): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "colony-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: options.width ?? 1280, height: options.height ?? 860 },
    // Same clock and zone in every screenshot.
    timezoneId: "UTC",
    locale: "en-GB",
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Builds web/ from the current source into a temp dir (the dist a test serves). */
export function buildDashboard(): { dir: string; remove(): void } {
  const out = mkdtempSync(join(tmpdir(), "colony-web-"));
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, "node_modules/vite/bin/vite.js"),
      "build",
      "web",
      "--outDir",
      out,
      "--emptyOutDir",
      "--logLevel",
      "warn",
    ],
    { cwd: ROOT, encoding: "utf8" },
  );
  if (r.status !== 0) {
    rmSync(out, { recursive: true, force: true });
    throw new Error(`vite build failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return { dir: out, remove: () => rmSync(out, { recursive: true, force: true }) };
}
