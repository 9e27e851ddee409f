/**
 * The per-request auth check: who is calling (token in Authorization, bare or
 * `Bearer`, a verified client certificate, or a dashboard session cookie), and may they
 * do what the route needs. 401 when no valid credential, 403 when the role is too low or
 * a session's request that changes something lacks its CSRF header.
 */
import type { TLSSocket } from "node:tls";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Authenticator } from "../app.ts";
import { errorBody } from "../errors.ts";
import { allows, type Principal, type Role } from "../principal.ts";
import { RELAY_HEADER, type Relay } from "../relay.ts";
import { CSRF_HEADER, readCookie, SESSION_COOKIE, Sessions } from "./sessions.ts";

/** Methods that change nothing, so need no CSRF header from a session. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The CN of a client certificate the TLS layer verified, if any. */
export function verifiedCertificateCn(request: FastifyRequest): string | undefined {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (!socket.authorized || typeof socket.getPeerCertificate !== "function") return undefined;
  const cert = socket.getPeerCertificate();
  const cn = cert?.subject?.CN;
  return typeof cn === "string" ? cn : Array.isArray(cn) ? cn[0] : undefined;
}

/**
 * Under mTLS: answers 401 and returns true when the connection brought no certificate
 * the client CA verified (none, expired, or signed by another CA).
 */
export async function refuseWithoutClientCertificate(
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<boolean> {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (socket.authorized === true) return false;
  const peer =
    typeof socket.getPeerCertificate === "function" ? socket.getPeerCertificate() : undefined;
  const presented = peer !== undefined && peer !== null && Object.keys(peer).length > 0;
  const why = presented
    ? `the client certificate was not accepted (${String(socket.authorizationError ?? "not verified")}); use one signed by the server's client CA`
    : "this server requires a client certificate (mutual TLS); send one signed by its client CA (curl --cert/--key)";
  await reply.status(401).send(errorBody("COLONY_CLIENT_CERTIFICATE_REQUIRED", why));
  return true;
}

export async function authenticateRequest(
  auth: Authenticator,
  request: FastifyRequest,
  reply: FastifyReply,
  need: Role,
  sessions?: Sessions,
  relay?: Relay,
): Promise<FastifyReply | undefined> {
  if (auth.disabled) {
    request.principal = { name: "anonymous", role: "admin", via: "none" };
    return undefined;
  }
  const relayed = request.headers[RELAY_HEADER];
  if (relayed !== undefined && relay) {
    // Another server of this store fetching output this one holds (server/relay.ts).
    if (typeof relayed === "string" && relay.verify(request.method, request.url, relayed)) {
      return checkRole({ name: "relay", role: "reader", via: "relay" }, need, request, reply);
    }
    await reply
      .status(401)
      .send(
        errorBody(
          "COLONY_UNAUTHENTICATED",
          `the ${RELAY_HEADER} signature is not valid here: the servers of a store need the same secret.key and clocks within 30 s, and a relay is a GET`,
        ),
      );
    return reply;
  }
  const authorization = request.headers.authorization;
  // A session cookie counts only when no token is sent (a token, when sent, decides).
  const cookie =
    sessions && !authorization?.trim()
      ? readCookie(request.headers.cookie, SESSION_COOKIE)
      : undefined;
  if (cookie !== undefined && sessions) {
    const principal = await sessionPrincipal(sessions, cookie, request, reply);
    if (!principal) return reply;
    return checkRole(principal, need, request, reply);
  }
  const certificateCn = verifiedCertificateCn(request);
  const principal = await auth.authenticate({ authorization, certificateCn });
  if (!principal) {
    const message = authorization?.trim()
      ? "the token is unknown or revoked; create one with 'colony token create'"
      : certificateCn !== undefined
        ? `the client certificate '${certificateCn}' maps to no role (tls.client_cn_roles); send a colony token in the Authorization header`
        : "authentication required: send a colony token in the Authorization header (the bare token or 'Bearer <token>')";
    await reply
      .status(401)
      .header("www-authenticate", 'Bearer realm="colony"')
      .send(errorBody("COLONY_UNAUTHENTICATED", message));
    return reply;
  }
  return checkRole(principal, need, request, reply);
}

async function checkRole(
  principal: Principal,
  need: Role,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply | undefined> {
  if (!allows(principal.role, need)) {
    await reply
      .status(403)
      .send(
        errorBody(
          "COLONY_FORBIDDEN",
          `this needs role ${need} or higher; '${principal.name}' has role ${principal.role}`,
        ),
      );
    return reply;
  }
  request.principal = principal;
  return undefined;
}

/**
 * The principal of a dashboard session cookie, after the CSRF check for requests that
 * change something; answers 401/403 itself and returns undefined when refused.
 */
async function sessionPrincipal(
  sessions: Sessions,
  cookie: string,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<Principal | undefined> {
  const session = await sessions.resolve(cookie);
  if (!session) {
    await reply
      .status(401)
      .send(
        errorBody(
          "COLONY_SESSION_ENDED",
          "your dashboard session has ended (logout, expiry, server restart or a revoked token); log in again",
        ),
      );
    return undefined;
  }
  if (!SAFE_METHODS.has(request.method)) {
    const header = request.headers[CSRF_HEADER];
    if (!Sessions.csrfMatches(session, Array.isArray(header) ? header[0] : header)) {
      await reply
        .status(403)
        .send(
          errorBody(
            "COLONY_CSRF",
            `a request from a dashboard session that changes something needs the ${CSRF_HEADER} header (the value of the colony_csrf cookie)`,
          ),
        );
      return undefined;
    }
  }
  return { ...session.principal, via: "session" };
}
