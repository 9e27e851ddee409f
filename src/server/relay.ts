/**
 * Output relay between servers that share a store. Each server keeps the output of the
 * tasks it ran in its own data dir; asked for output another server holds, a server
 * fetches it from that one (the URL the holder recorded in the store) and passes it on,
 * so a client may ask any of them.
 *
 * The fetch is signed, not sent with the client's credentials (a dashboard session
 * lives in one server's memory): `X-Colony-Relay: {ms}.{hex}`, HMAC-SHA256 under a key
 * derived from the shared secret.key of "GET {path and query} {ms}". The holder takes it
 * as a reader for that one GET within 30 s of its time. Only servers holding secret.key
 * can sign, and they can read everything already.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";
import type { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { ColonyError } from "../core/errors.ts";
import { undici } from "../core/http-request.ts";
import type { Store } from "../store/store.ts";

export const RELAY_HEADER = "x-colony-relay";
/** How far a relay's time may be from the holder's clock. */
export const RELAY_SKEW_MS = 30_000;

/**
 * Whether another server sent this request (with auth on, a header that did not verify
 * was refused already; with auth off, any relay header counts): it must be answered
 * from here, never relayed again.
 */
export function isRelayed(headers: Record<string, unknown>): boolean {
  return headers[RELAY_HEADER] !== undefined;
}

export class Relay {
  readonly #key: KeyObject;

  constructor(secretKey: Buffer) {
    this.#key = createSecretKey(
      createHmac("sha256", secretKey).update("colony output relay v1").digest(),
    );
  }

  #mac(path: string, ms: number): Buffer {
    return createHmac("sha256", this.#key).update(`GET ${path} ${ms}`).digest();
  }

  /** The header value for a GET of `path` (path and query, as sent). */
  sign(path: string, now = Date.now()): string {
    return `${now}.${this.#mac(path, now).toString("hex")}`;
  }

  /** Whether `header` signs a GET of `path` made within RELAY_SKEW_MS of now. */
  verify(method: string, path: string, header: string, now = Date.now()): boolean {
    const match = /^(\d{1,16})\.([0-9a-f]{64})$/.exec(header);
    if (!match || method !== "GET") return false;
    const ms = Number(match[1]);
    if (Math.abs(now - ms) > RELAY_SKEW_MS) return false;
    return timingSafeEqual(this.#mac(path, ms), Buffer.from(match[2]!, "hex"));
  }
}

/** What another server of the store holds could not be fetched from it. */
export const OUTPUT_ELSEWHERE = "COLONY_OUTPUT_ELSEWHERE";

/**
 * GETs `path` from the server whose data dir is `holder` (its URL from the store),
 * signed, and answers the body as it comes. A holder that is unknown, down or answers
 * anything but 200 is a 502 COLONY_OUTPUT_ELSEWHERE naming `what` and the holder.
 */
export async function fetchHeld(
  store: Store,
  relay: Relay,
  input: { holder: string; path: string; what: string },
): Promise<Readable> {
  const { what, path } = input;
  const holder = await store.getServer(input.holder);
  if (!holder) {
    throw new ColonyError(
      OUTPUT_ELSEWHERE,
      `${what} is in the data dir of another server, which has not recorded its URL in the store (it has not started since colony learnt to); ask that server`,
      { status: 502 },
    );
  }
  const where = `server '${holder.nodeId}' at ${holder.url}`;
  let response: Dispatcher.ResponseData;
  try {
    response = await (
      await undici()
    ).request(holder.url + path, {
      headers: { [RELAY_HEADER]: relay.sign(path) },
      headersTimeout: 10_000,
      bodyTimeout: 0,
    });
  } catch (error) {
    throw new ColonyError(
      OUTPUT_ELSEWHERE,
      `${what} is on ${where}, which did not answer (${(error as Error).message}); it can be read once that server runs`,
      { status: 502 },
    );
  }
  if (response.statusCode !== 200) {
    const text = await response.body.text().catch(() => "");
    let why = text.slice(0, 200);
    try {
      why = (JSON.parse(text) as { error: { message: string } }).error.message;
    } catch {
      // not colony's JSON error: keep the text
    }
    throw new ColonyError(
      OUTPUT_ELSEWHERE,
      `${what} is on ${where}, which answered ${response.statusCode}: ${why}`,
      { status: 502 },
    );
  }
  return response.body;
}
