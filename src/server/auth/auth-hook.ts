/**
 * The per-request auth check: who is calling (token in Authorization, bare or
 * `Bearer`, or a verified client certificate), and may they do what the route needs.
 * 401 when no valid credential, 403 when the role is too low.
 */
import type { TLSSocket } from "node:tls";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Authenticator } from "../app.ts";
import { errorBody } from "../errors.ts";
import { allows, type Role } from "../principal.ts";

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
): Promise<void> {
  if (auth.disabled) {
    request.principal = { name: "anonymous", role: "admin", via: "none" };
    return;
  }
  const authorization = request.headers.authorization;
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
}
