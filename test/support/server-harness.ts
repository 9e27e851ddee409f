/**
 * Helpers for tests of the real server (startServer, real sockets): a plain HTTP(S)
 * client that can present client certificates, a config in a temp data dir, and a tiny
 * route module with one route per role so auth can be tested without depending on the
 * other API routes.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { loadConfig, type Config, type ConfigOverrides } from "../../src/config/config.ts";
import type { RouteModule } from "../../src/server/app.ts";

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A JSON body (sent with Content-Type application/json unless headers say otherwise). */
  json?: unknown;
  body?: string | Buffer;
  /** PEM files: the CA to trust, and a client certificate and key to present. */
  ca?: string;
  cert?: string;
  key?: string;
}

/** One request on a fresh connection (no keep-alive: nothing left open after a test). */
export function http(url: string, options: HttpOptions = {}): Promise<HttpAnswer> {
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["content-type"] ??= "application/json";
  }
  const target = new URL(url);
  const tls = target.protocol === "https:";
  const send = tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      {
        method: options.method ?? (body === undefined ? "GET" : "POST"),
        headers,
        agent: false,
        ...(tls
          ? {
              ca: options.ca ? readFileSync(options.ca) : undefined,
              cert: options.cert ? readFileSync(options.cert) : undefined,
              key: options.key ? readFileSync(options.key) : undefined,
            }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: <T>() => JSON.parse(text) as T,
          });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * A config for a server on a random loopback port with its data dir in `base`/data; with
 * `yaml`, read from `base`/colony.yaml (relative paths in it resolve against `base`).
 */
export function testConfig(
  base: string,
  options: { yaml?: string; overrides?: ConfigOverrides } = {},
): Config {
  let file: string | undefined;
  if (options.yaml !== undefined) {
    file = join(base, "colony.yaml");
    writeFileSync(file, options.yaml);
  }
  return loadConfig({
    file,
    env: {},
    overrides: { dataDir: join(base, "data"), port: 0, host: "127.0.0.1", ...options.overrides },
  });
}

/** GET /test/reader, POST /test/writer, GET /test/admin: each answers the caller. */
export const roleTestRoutes: RouteModule = (app) => {
  for (const [method, role] of [
    ["GET", "reader"],
    ["POST", "writer"],
    ["GET", "admin"],
  ] as const) {
    app.route({
      method,
      url: `/test/${role}`,
      config: { role },
      schema: { hide: true },
      handler: async (request) => ({ principal: request.principal }),
    });
  }
};

export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
