/**
 * Serves the dashboard (web/dist, built by `npm run build:web`) at `/`.
 *
 * The files are few and small, so they are read into memory once (at start, and again
 * after a rebuild), with gzip and brotli copies, and answered from memory with strong
 * ETags. Vite names every asset
 * after a hash of its content, so `/assets/*` is cached for a year (`immutable`); the
 * page itself (`/`) is revalidated on every load, so a new build shows at the next reload.
 * When web/dist is missing, `/` says how to build it.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompress, constants, gzip } from "node:zlib";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { RouteModule } from "../app.ts";

export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL("../../../web/dist", import.meta.url));

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
  ".map": "application/json",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".txt", ".map"]);

/**
 * The page may load only what colony serves: no CDN, no inline script, no framing.
 * Styles set through the DOM (element.style) are allowed by style-src 'self'.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

interface StaticFile {
  body: Buffer;
  gzip?: Buffer;
  br?: Buffer;
  type: string;
  etag: string;
}

/**
 * Reads every file of `dir`; compressed copies are made in the background (zlib's thread
 * pool, not the event loop) and served once ready: the first visitor after a start does
 * not wait for brotli.
 */
function loadDir(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const body = readFileSync(path);
        const ext = extname(entry.name);
        const file: StaticFile = {
          body,
          type: TYPES[ext] ?? "application/octet-stream",
          etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`,
        };
        if (COMPRESSIBLE.has(ext) && body.length > 512) {
          gzip(body, { level: 9 }, (error, out) => {
            if (!error) file.gzip = out;
          });
          brotliCompress(
            body,
            {
              params: {
                [constants.BROTLI_PARAM_QUALITY]: 11,
                [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
              },
            },
            (error, out) => {
              if (!error) file.br = out;
            },
          );
        }
        files.set("/" + relative(dir, path).split(sep).join("/"), file);
      }
    }
  };
  walk(dir);
  return files;
}

function notBuilt(dir: string): string {
  const root = relative(process.cwd(), join(dir, "..", "..")) || ".";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>colony: dashboard not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>The colony dashboard is not built</h1>
<p>This server found no <code>${escapeHtml(dir)}</code>. Build it once (nothing is downloaded):</p>
<pre style="background:#f4f4f4;padding:1rem">cd ${escapeHtml(root)}
npm run build:web</pre>
<p>then reload this page. (<code>npm install</code> in a checkout builds it too.) The REST API
is available meanwhile: <a href="/api/openapi.json">/api/openapi.json</a>.</p>
</body></html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface DashboardOptions {
  /** The built dashboard (default web/dist of this package). */
  dir?: string;
}

/** Route module serving the dashboard from `options.dir`. */
export function createDashboardRoutes(options: DashboardOptions = {}): RouteModule {
  const dir = options.dir ?? DEFAULT_DASHBOARD_DIR;
  let files: Map<string, StaticFile> | undefined;
  let loadedFrom = 0;

  /** The files, (re)read when index.html appeared or changed since the last read. */
  const current = (): Map<string, StaticFile> | undefined => {
    const index = join(dir, "index.html");
    if (!existsSync(index)) {
      files = undefined;
      return undefined;
    }
    const mtime = statSync(index).mtimeMs;
    if (!files || mtime !== loadedFrom) {
      files = loadDir(dir);
      loadedFrom = mtime;
    }
    return files;
  };

  const send = (request: FastifyRequest, reply: FastifyReply, file: StaticFile, cache: string) => {
    void reply
      .header("cache-control", cache)
      .header("etag", file.etag)
      .header("vary", "accept-encoding")
      .header("x-content-type-options", "nosniff")
      .type(file.type);
    if (request.headers["if-none-match"] === file.etag) return reply.status(304).send();
    const accept = String(request.headers["accept-encoding"] ?? "");
    if (file.br && /\bbr\b/.test(accept)) {
      return reply.header("content-encoding", "br").send(file.br);
    }
    if (file.gzip && /\bgzip\b/.test(accept)) {
      return reply.header("content-encoding", "gzip").send(file.gzip);
    }
    return reply.send(file.body);
  };

  return (app) => {
    current(); // read (and start compressing) at start, not on the first visit
    const page = async (request: FastifyRequest, reply: FastifyReply) => {
      void reply
        .header("content-security-policy", CSP)
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "same-origin");
      const index = current()?.get("/index.html");
      if (!index) {
        return reply
          .status(503)
          .header("cache-control", "no-store")
          .type("text/html; charset=utf-8")
          .send(notBuilt(dir));
      }
      return send(request, reply, index, "no-cache");
    };
    app.get("/", { schema: { hide: true } }, page);
    app.get("/index.html", { schema: { hide: true } }, page);
    app.get("/assets/*", { schema: { hide: true } }, async (request, reply) => {
      let path: string;
      try {
        path = decodeURIComponent(request.url.split("?")[0]!);
      } catch {
        return reply.callNotFound();
      }
      const file = current()?.get(path);
      if (!file) return reply.callNotFound();
      return send(request, reply, file, "public, max-age=31536000, immutable");
    });
  };
}

export const dashboardRoutes: RouteModule = createDashboardRoutes();
