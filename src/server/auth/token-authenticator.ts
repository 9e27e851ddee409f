/**
 * Who is calling: API tokens (random, stored only as sha256 hashes) and verified client
 * certificates whose CN is mapped to a role in `tls.client_cn_roles`.
 *
 * A token is `colony_` + 32 random bytes in base64url. The server never keeps one: it
 * hashes what a request presents and looks the hash up, so no secret is ever compared
 * byte by byte (a timing difference in the lookup tells an attacker about a hash, from
 * which no token can be found). A small cache of hash -> principal keeps the store off
 * the hot path; revoking clears it, and on a store shared by several servers a
 * revocation takes effect on the others within `cacheMs` (5 s).
 */
import { createHash, randomBytes } from "node:crypto";
import type { Store, StoredToken } from "../../store/store.ts";
import type { Authenticator } from "../app.ts";
import { isRole, type Principal } from "../principal.ts";

export const TOKEN_PREFIX = "colony_";

/** A new random token and the hash the store keeps of it. */
export function newToken(): { token: string; hash: string } {
  const token = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * The token in an Authorization header value: `Bearer <token>` (any case, as RFC 6750
 * allows) or the whole value as the bare token (the way seed 003's clients send it).
 * Undefined when there is no header or it is blank.
 */
export function tokenFromHeader(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const value = authorization.trim();
  if (value === "") return undefined;
  const bearer = /^bearer\s+(\S+)$/i.exec(value);
  return bearer ? bearer[1] : value;
}

export function principalOfToken(token: StoredToken): Principal {
  return { name: token.name, role: token.role, via: "token", tokenId: token.id };
}

export interface TokenAuthenticatorOptions {
  store: Store;
  /** --insecure-no-auth: everyone is admin. */
  disabled?: boolean;
  /** Verified client-certificate CN -> role. */
  clientCnRoles?: Readonly<Record<string, string>>;
  /** How long a looked-up token is trusted without asking the store (default 5 s). */
  cacheMs?: number;
  /** At most one last_used_at write per token per this period (default 60 s). */
  touchEveryMs?: number;
  /** Cache entries kept at most; the cache is emptied when it would grow past (default 10 000). */
  maxCacheEntries?: number;
  now?: () => number;
  /** Where failures to record a token's use are reported (they never fail a request). */
  log?: (message: string) => void;
}

interface CacheEntry {
  principal: Promise<Principal | undefined>;
  expires: number;
}

export class TokenAuthenticator implements Authenticator {
  readonly disabled: boolean;
  readonly #store: Store;
  readonly #cnRoles: Readonly<Record<string, string>>;
  readonly #cacheMs: number;
  readonly #touchEveryMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #log: (message: string) => void;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #touched = new Map<string, number>();
  /** Bumped by invalidate(): a lookup that started before it does not fill the cache. */
  #generation = 0;

  constructor(options: TokenAuthenticatorOptions) {
    this.#store = options.store;
    this.disabled = options.disabled ?? false;
    this.#cnRoles = options.clientCnRoles ?? {};
    this.#cacheMs = options.cacheMs ?? 5000;
    this.#touchEveryMs = options.touchEveryMs ?? 60_000;
    this.#maxEntries = options.maxCacheEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
    for (const [cn, role] of Object.entries(this.#cnRoles)) {
      if (!isRole(role)) {
        throw new TypeError(
          `tls.client_cn_roles: '${cn}' maps to unknown role '${role}'; use reader, writer, admin or ant`,
        );
      }
    }
  }

  /**
   * A token, when one is sent, decides alone (an unknown one is refused even with a
   * good certificate: a caller that sends a wrong token has made a mistake worth
   * hearing about). Without a token, a verified certificate's CN may carry a role.
   */
  async authenticate(input: {
    authorization?: string;
    certificateCn?: string;
  }): Promise<Principal | undefined> {
    if (this.disabled) return { name: "anonymous", role: "admin", via: "none" };
    const token = tokenFromHeader(input.authorization);
    if (token !== undefined) return this.#byToken(token);
    if (input.certificateCn !== undefined) return this.roleOfCertificate(input.certificateCn);
    return undefined;
  }

  /** The principal a verified certificate with this CN stands for, if it is mapped. */
  roleOfCertificate(cn: string): Principal | undefined {
    const role = Object.hasOwn(this.#cnRoles, cn) ? this.#cnRoles[cn] : undefined;
    return role !== undefined && isRole(role) ? { name: cn, role, via: "certificate" } : undefined;
  }

  /** Forgets every cached token (call after a revocation). */
  invalidate(): void {
    this.#generation++;
    this.#cache.clear();
  }

  async #byToken(token: string): Promise<Principal | undefined> {
    // Longer than any token we make: refuse without hashing megabytes of header.
    if (token.length > 512) return undefined;
    const hash = hashToken(token);
    const now = this.#now();
    let entry = this.#cache.get(hash);
    if (!entry || entry.expires <= now) {
      if (this.#cache.size >= this.#maxEntries) this.#cache.clear();
      const generation = this.#generation;
      // The promise is cached, so a burst of requests with one new token asks the store once.
      const principal = this.#store
        .findTokenByHash(hash)
        .then((found) => (found ? principalOfToken(found) : undefined));
      entry = { principal, expires: now + this.#cacheMs };
      this.#cache.set(hash, entry);
      const cached = entry;
      // Unknown tokens and failed lookups are not remembered: the next request asks again.
      principal.then(
        (p) => {
          if (!p || generation !== this.#generation) this.#drop(hash, cached);
        },
        () => this.#drop(hash, cached),
      );
    }
    const principal = await entry.principal;
    if (principal?.tokenId !== undefined) this.#touch(principal.tokenId, now);
    return principal;
  }

  #drop(hash: string, entry: CacheEntry): void {
    if (this.#cache.get(hash) === entry) this.#cache.delete(hash);
  }

  #touch(id: string, now: number): void {
    const last = this.#touched.get(id);
    if (last !== undefined && now - last < this.#touchEveryMs) return;
    if (this.#touched.size >= this.#maxEntries) this.#touched.clear();
    this.#touched.set(id, now);
    this.#store
      .touchToken(id, new Date(now))
      .catch((error: unknown) =>
        this.#log(`could not record the use of token ${id}: ${String(error)}`),
      );
  }
}
