/**
 * How colony calls HTTP servers it does not control (HTTP tasks, and an ant's artifact
 * transfers to its server): undici's `request`, not `fetch`. fetch is a browser's
 * client: it refuses the ports browsers block (6000, 6665–6669, 10080...), drops a
 * `Host` header and adds browser headers. undici loads on first use (~0.1 s of imports
 * a run without HTTP calls does not pay).
 */
import type * as Undici from "undici";
import type { Dispatcher } from "undici";
import { bypassList, type Proxies } from "./proxies.ts";

let loaded: Promise<typeof Undici> | undefined;

export function undici(): Promise<typeof Undici> {
  return (loaded ??= import("undici"));
}

/** A 2xx answer. */
export function succeeded(response: Dispatcher.ResponseData): boolean {
  return response.statusCode >= 200 && response.statusCode < 300;
}

/** TLS options of undici's connector (`ca`, `cert`, `key`...). */
export type TlsOptions = Record<string, unknown>;

/**
 * An undici dispatcher whose calls go through `proxies` (core/proxies.ts: NO_PROXY and
 * loopback called directly), or straight to the server without one. `connect` is the
 * TLS towards the servers, also through a tunnel; `proxyTls` towards an https:// proxy.
 */
export function proxiedDispatcher(
  http: typeof Undici,
  proxies: Proxies,
  connect?: TlsOptions,
  proxyTls?: TlsOptions,
): Dispatcher {
  if (!proxies.http && !proxies.https) return new http.Agent(connect ? { connect } : undefined);
  return new http.EnvHttpProxyAgent({
    // "" rather than undefined: undici would read the environment again.
    httpProxy: proxies.http ?? "",
    httpsProxy: proxies.https ?? "",
    noProxy: bypassList(proxies),
    ...(connect ? { connect, requestTls: connect } : {}),
    ...(proxyTls ? { proxyTls } : {}),
  });
}
