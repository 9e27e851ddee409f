/**
 * Browser sessions for the dashboard. A browser trades a token (or a one-time login
 * link the server printed) for a session: a random id in an HttpOnly, SameSite=Strict
 * cookie, so page scripts never hold the token and other sites cannot use it. Requests
 * that change something must also carry the session's CSRF token in a header (the
 * double-submit pattern: the token is in a readable cookie, and the server checks the
 * header against its own copy), which a cross-site form or image cannot add.
 *
 * Sessions live in server memory: a restart or a logout ends them, as does revoking
 * the token a session was made from (it is checked against the store every few
 * seconds). Only hashes of session ids and login nonces are kept, as with tokens.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { Store } from "../../store/store.ts";
import type { Principal } from "../principal.ts";

export const SESSION_COOKIE = "colony_session";
export const CSRF_COOKIE = "colony_csrf";
export const CSRF_HEADER = "x-colony-csrf";

export interface Session {
  principal: Principal;
  /** Hash of the token the session was made from; undefined when auth is off. */
  tokenHash: string | undefined;
  csrf: string;
  createdAt: number;
  lastSeen: number;
  /** When the token was last confirmed unrevoked. */
  checkedAt: number;
}

export interface NewSession {
  /** The cookie value (only the browser keeps it). */
  id: string;
  session: Session;
}

export interface SessionsOptions {
  store: Store;
  /** A session unused for this long ends (default 12 h). */
  idleMs?: number;
  /** A session ends this long after it began, used or not (default 7 days). */
  maxAgeMs?: number;
  /** How often a session's token is checked against the store (default 2 s). */
  recheckMs?: number;
  /** How long a login link works (default 10 min). */
  loginLinkMs?: number;
  /** Sessions kept at most; the oldest go first (default 10 000). */
  maxSessions?: number;
  now?: () => number;
}

interface LoginLink {
  principal: Principal;
  tokenHash: string | undefined;
  expires: number;
}

function sha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function random(): string {
  return randomBytes(32).toString("base64url");
}

export class Sessions {
  readonly idleMs: number;
  readonly maxAgeMs: number;
  readonly loginLinkMs: number;
  readonly #store: Store;
  readonly #recheckMs: number;
  readonly #max: number;
  readonly #now: () => number;
  /** sha256(cookie value) -> session; Map order is creation order (oldest first). */
  readonly #sessions = new Map<string, Session>();
  /** sha256(nonce) -> login link. */
  readonly #links = new Map<string, LoginLink>();

  constructor(options: SessionsOptions) {
    this.#store = options.store;
    this.idleMs = options.idleMs ?? 12 * 3600_000;
    this.maxAgeMs = options.maxAgeMs ?? 7 * 24 * 3600_000;
    this.loginLinkMs = options.loginLinkMs ?? 10 * 60_000;
    this.#recheckMs = options.recheckMs ?? 2000;
    this.#max = options.maxSessions ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Starts a session for a caller who proved who they are. */
  create(principal: Principal, tokenHash: string | undefined): NewSession {
    this.#sweep();
    while (this.#sessions.size >= this.#max) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
    const id = random();
    const now = this.#now();
    const session: Session = {
      principal,
      tokenHash,
      csrf: random(),
      createdAt: now,
      lastSeen: now,
      checkedAt: now,
    };
    this.#sessions.set(sha256(id), session);
    return { id, session };
  }

  /**
   * The live session of a cookie value, or undefined when it ended (logout, expiry,
   * server restart, or its token was revoked).
   */
  async resolve(id: string): Promise<Session | undefined> {
    if (id.length > 100) return undefined;
    const key = sha256(id);
    const session = this.#sessions.get(key);
    if (!session) return undefined;
    const now = this.#now();
    if (now - session.lastSeen > this.idleMs || now - session.createdAt > this.maxAgeMs) {
      this.#sessions.delete(key);
      return undefined;
    }
    if (session.tokenHash !== undefined && now - session.checkedAt > this.#recheckMs) {
      const token = await this.#store.findTokenByHash(session.tokenHash);
      if (!token) {
        this.#sessions.delete(key);
        return undefined;
      }
      session.principal = { ...session.principal, role: token.role, name: token.name };
      session.checkedAt = now;
    }
    session.lastSeen = now;
    return session;
  }

  /** Ends a session (logout). True when there was one. */
  destroy(id: string): boolean {
    return this.#sessions.delete(sha256(id));
  }

  /** Whether `header` is this session's CSRF token (compared in constant time). */
  static csrfMatches(session: Session, header: string | undefined): boolean {
    if (header === undefined) return false;
    const a = Buffer.from(header);
    const b = Buffer.from(session.csrf);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /**
   * A one-time login nonce for `principal`: redeem() trades it for a session once,
   * within loginLinkMs.
   */
  createLoginLink(principal: Principal, tokenHash: string | undefined): string {
    this.#sweep();
    const nonce = random();
    this.#links.set(sha256(nonce), {
      principal,
      tokenHash,
      expires: this.#now() + this.loginLinkMs,
    });
    return nonce;
  }

  /** Trades a login nonce for a new session; undefined when unknown, used or expired. */
  async redeem(nonce: string): Promise<NewSession | undefined> {
    if (nonce.length > 100) return undefined;
    const key = sha256(nonce);
    const link = this.#links.get(key);
    if (!link) return undefined;
    this.#links.delete(key);
    if (link.expires <= this.#now()) return undefined;
    if (link.tokenHash !== undefined && !(await this.#store.findTokenByHash(link.tokenHash))) {
      return undefined;
    }
    return this.create(link.principal, link.tokenHash);
  }

  /** Forgets every session and link (server stop). */
  clear(): void {
    this.#sessions.clear();
    this.#links.clear();
  }

  #sweep(): void {
    const now = this.#now();
    for (const [key, link] of this.#links) if (link.expires <= now) this.#links.delete(key);
    for (const [key, s] of this.#sessions) {
      if (now - s.lastSeen > this.idleMs || now - s.createdAt > this.maxAgeMs)
        this.#sessions.delete(key);
    }
  }
}

/** The value of cookie `name` in a Cookie header, if present. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(value);
    } catch {
      return value;
    }
  }
  return undefined;
}

export interface CookieOptions {
  httpOnly: boolean;
  secure: boolean;
  /** Seconds; 0 deletes the cookie; undefined makes a browser-session cookie. */
  maxAge?: number;
}

/** A Set-Cookie value: always Path=/ and SameSite=Strict. */
export function serializeCookie(name: string, value: string, options: CookieOptions): string {
  const parts = [`${name}=${encodeURIComponent(value)}`, "Path=/", "SameSite=Strict"];
  if (options.httpOnly) parts.push("HttpOnly");
  if (options.secure) parts.push("Secure");
  if (options.maxAge !== undefined)
    parts.push(`Max-Age=${Math.max(0, Math.floor(options.maxAge))}`);
  return parts.join("; ");
}
