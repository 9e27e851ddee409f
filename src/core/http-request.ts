/**
 * How colony calls HTTP servers it does not control (HTTP tasks, and an ant's artifact
 * transfers to its server): undici's `request`, not `fetch`. fetch is a browser's
 * client: it refuses the ports browsers block (6000, 6665–6669, 10080...), drops a
 * `Host` header and adds browser headers. undici loads on first use (~0.1 s of imports
 * a run without HTTP calls does not pay).
 */
import type * as Undici from "undici";
import type { Dispatcher } from "undici";

let loaded: Promise<typeof Undici> | undefined;

export function undici(): Promise<typeof Undici> {
  return (loaded ??= import("undici"));
}

/** A 2xx answer. */
export function succeeded(response: Dispatcher.ResponseData): boolean {
  return response.statusCode >= 200 && response.statusCode < 300;
}
