/**
 * HTTP proxies, as the usual variables name them: HTTP_PROXY for http:// (and ws://),
 * HTTPS_PROXY for https:// (and wss://; HTTP_PROXY when only that is set, as undici and
 * Node do), NO_PROXY for the hosts called directly. Lowercase forms win; an empty value
 * counts as unset. Loopback (localhost, 127.0.0.1, ::1) is always called directly, as Go's
 * net/http does: no proxy could reach it.
 *
 * Used by HTTP tasks (through undici's EnvHttpProxyAgent) and by the WebSocket clients that
 * run on other machines (`colony ant`, the worker SDK: `tunnel`, a CONNECT through the
 * proxy, since a proxy forwards no WebSocket upgrade of a plain request).
 */
import type { Socket } from "node:net";
import { redactUrl } from "./urls.ts";

export interface Proxies {
  /** A proxy URL: `http://proxy:3128`, `http://user:password@proxy:3128`, `https://…`. */
  http?: string;
  https?: string;
  /** NO_PROXY's list: `example.com` (and its subdomains), `.example.com`, `*`, `host:port`. */
  noProxy?: string;
}

/** Hosts no proxy could reach, called directly whatever NO_PROXY says. */
export const LOOPBACK = ["localhost", "127.0.0.1", "::1"];

/** HTTP_PROXY, HTTPS_PROXY and NO_PROXY from `env`, lowercase first; empty counts as unset. */
export function proxiesFromEnv(env: NodeJS.ProcessEnv = process.env): Proxies {
  const read = (name: string) => env[name.toLowerCase()] || env[name] || undefined;
  const http = read("HTTP_PROXY");
  const https = read("HTTPS_PROXY");
  const noProxy = read("NO_PROXY");
  return {
    ...(http ? { http } : {}),
    ...(https ? { https } : {}),
    ...(noProxy ? { noProxy } : {}),
  };
}

/** NO_PROXY's list with loopback added. */
export function bypassList(proxies: Proxies): string {
  return [proxies.noProxy, ...LOOPBACK].filter(Boolean).join(",");
}

/**
 * Whether `url`'s host is in `bypass` (a NO_PROXY list), as undici reads one: `name`
 * and `.name` match the name and its subdomains, `*.name` its subdomains only, `*` every
 * host; `name:port` (`[::1]:port`) only that port.
 */
function bypassed(bypass: string, url: URL): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const port = url.port || (/^(https|wss):$/.test(url.protocol) ? "443" : "80");
  for (const raw of bypass.split(/[,\s]+/)) {
    let entry = raw.trim().toLowerCase();
    if (!entry) continue;
    let entryPort: string | undefined;
    const split = /^\[(.+)\](?::(\d+))?$/.exec(entry) ?? /^([^:]+):(\d+)$/.exec(entry);
    if (split) [, entry = "", entryPort] = split;
    if (entryPort && entryPort !== port) continue;
    if (entry === "*") return true;
    const name = entry.replace(/^\*?\./, "").replace(/\.$/, "");
    if ((!entry.startsWith("*") && host === name) || host.endsWith(`.${name}`)) return true;
  }
  return false;
}

/** The proxy a connection to `url` goes through, or undefined when it goes directly. */
export function proxyFor(proxies: Proxies, url: URL): string | undefined {
  const secure = url.protocol === "https:" || url.protocol === "wss:";
  const proxy = secure ? (proxies.https ?? proxies.http) : proxies.http;
  if (!proxy || bypassed(bypassList(proxies), url)) return undefined;
  return proxy;
}

/** The caller's options that are TLS's, for the TLS over the tunnel. */
const TLS_OPTIONS = [
  "ca",
  "cert",
  "key",
  "pfx",
  "passphrase",
  "rejectUnauthorized",
  "checkServerIdentity",
  "minVersion",
  "maxVersion",
  "ciphers",
  "ALPNProtocols",
] as const;

/** What `ws` (and http.request) take as `createConnection`: options in, socket to the callback. */
export type CreateConnection = (
  options: Record<string, unknown>,
  callback: (error: Error | null, socket?: Socket) => void,
) => undefined;

/**
 * A `createConnection` that reaches the target host through `proxy` with CONNECT, then
 * (for wss://, https://: `secure`) starts TLS to the target over the tunnel with the
 * caller's TLS options (`ca`, `servername`...). Credentials in the proxy's URL go as Basic
 * Proxy-Authorization. Errors name the proxy (password hidden) and what it answered.
 */
export function tunnel(proxy: string, secure: boolean): CreateConnection {
  const via = new URL(proxy);
  return (options, callback) => {
    const host = String(options.host ?? "");
    const port = Number(options.port);
    const target = `${host.includes(":") ? `[${host}]` : host}:${port}`;
    const shown = redactUrl(proxy);
    const fail = (message: string) => callback(new Error(`through the proxy ${shown}: ${message}`));
    const headers: Record<string, string> = { host: target };
    if (via.username || via.password) {
      const credentials = `${decodeURIComponent(via.username)}:${decodeURIComponent(via.password)}`;
      headers["proxy-authorization"] = `Basic ${Buffer.from(credentials).toString("base64")}`;
    }
    const { request } =
      via.protocol === "https:"
        ? process.getBuiltinModule("node:https")
        : process.getBuiltinModule("node:http");
    const req = request({
      host: via.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: via.port || (via.protocol === "https:" ? 443 : 80),
      method: "CONNECT",
      path: target,
      headers,
      // An https:// proxy is checked against Node's CAs: `options.ca` is the server's.
      agent: false,
    });
    const timeout = Number(options.timeout) || 30_000;
    req.setTimeout(timeout, () => req.destroy(new Error(`no answer in ${timeout} ms`)));
    req.once("connect", (res, socket, head) => {
      req.setTimeout(0);
      if (res.statusCode !== 200) {
        socket.destroy();
        const hint =
          res.statusCode === 407
            ? "; it wants credentials: put them in the proxy's URL (http://user:password@proxy:3128)"
            : "";
        fail(
          `the proxy answered ${res.statusCode} ${res.statusMessage ?? ""} to CONNECT ${target}${hint}`.trim(),
        );
        return;
      }
      if (head.length > 0) socket.unshift(head);
      if (!secure) {
        callback(null, socket);
        return;
      }
      const { connect } = process.getBuiltinModule("node:tls");
      const servername =
        typeof options.servername === "string"
          ? options.servername
          : /^[\d.]+$|:/.test(host)
            ? undefined
            : host;
      const tlsOptions: Record<string, unknown> = {};
      for (const key of TLS_OPTIONS) if (options[key] !== undefined) tlsOptions[key] = options[key];
      callback(null, connect({ ...tlsOptions, socket, ...(servername ? { servername } : {}) }));
    });
    req.once("error", (error) => fail(`cannot reach the proxy: ${error.message}`));
    req.end();
    return undefined;
  };
}
