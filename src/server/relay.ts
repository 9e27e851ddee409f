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

export const RELAY_HEADER = "x-colony-relay";
/** How far a relay's time may be from the holder's clock. */
export const RELAY_SKEW_MS = 30_000;

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
