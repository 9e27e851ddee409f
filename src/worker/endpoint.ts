/**
 * The /ws/ants URL of a colony server, for the WebSocket worker and `colony ant`. A
 * module of its own, with no imports: the worker SDK checks the URL when a worker is
 * started, before it loads the worker's implementation (worker/index.ts).
 */

/** `http://host:7777` (or ws://, wss://, with or without /ws/ants) -> the ants endpoint. */
export function antsEndpoint(server: string): string {
  const url = URL.parse(server);
  if (url === null) {
    throw new TypeError(
      `'${server}' is not a URL of a colony server; write e.g. http://host:7777 or ws://host:7777`,
    );
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new TypeError(`'${server}' is not an http(s):// or ws(s):// URL of a colony server`);
  }
  if (url.pathname === "/" || url.pathname === "") url.pathname = "/ws/ants";
  return url.toString();
}
