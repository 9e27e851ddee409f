/**
 * Browser login for the dashboard (see auth/sessions.ts for the model):
 *
 * - `POST /api/session {token}`: a token becomes an HttpOnly, SameSite=Strict session
 *   cookie plus a readable CSRF cookie; the answer says who you are and the CSRF token;
 * - `GET /api/session`: who you are (and the CSRF token, for a session);
 * - `DELETE /api/session`: logout: the session ends on the server and both cookies go;
 * - `GET /login?once=<nonce>`: the one-time link the server prints at start;
 * - `POST /api/login-links` (admin): a new one-time link for the caller.
 */
import { Type } from "typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import { ColonyError } from "../../core/errors.ts";
import type { RouteModule, ServerDeps } from "../app.ts";
import { hashToken, tokenFromHeader } from "../auth/token-authenticator.ts";
import {
  CSRF_COOKIE,
  readCookie,
  serializeCookie,
  SESSION_COOKIE,
  type NewSession,
} from "../auth/sessions.ts";
import type { Principal } from "../principal.ts";
import { errorResponses } from "../schemas.ts";

const TAGS = ["session"];

const RoleSchema = Type.Union([
  Type.Literal("reader"),
  Type.Literal("writer"),
  Type.Literal("admin"),
  Type.Literal("ant"),
]);

export const SessionSchema = Type.Object({
  name: Type.String({ description: "The token's name (or 'anonymous' with auth off)" }),
  role: RoleSchema,
  auth_enabled: Type.Boolean(),
  via: Type.String({ description: "token, certificate, session, relay or none" }),
  csrf_token: Type.Union([Type.String(), Type.Null()], {
    description:
      "For a session: send it in the X-Colony-CSRF header with every request that changes something",
  }),
});

const LoginBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 512, description: "A colony token" }) },
  { additionalProperties: false },
);

const LoginLinkSchema = Type.Object({
  url: Type.String({ description: "Open it once within expires_at to be logged in" }),
  expires_at: Type.String(),
});

function secureCookies(deps: ServerDeps): boolean {
  return deps.config.tls !== undefined || deps.baseUrl.startsWith("https:");
}

function setSessionCookies(deps: ServerDeps, reply: FastifyReply, created: NewSession): void {
  const secure = secureCookies(deps);
  const maxAge = deps.sessions.maxAgeMs / 1000;
  void reply.header("set-cookie", [
    serializeCookie(SESSION_COOKIE, created.id, { httpOnly: true, secure, maxAge }),
    serializeCookie(CSRF_COOKIE, created.session.csrf, { httpOnly: false, secure, maxAge }),
  ]);
}

function sessionView(deps: ServerDeps, principal: Principal, csrf: string | null) {
  return {
    name: principal.name,
    role: principal.role,
    auth_enabled: !deps.auth.disabled,
    via: principal.via,
    csrf_token: csrf,
  };
}

/** The session behind this request's cookie, when the request was authenticated by one. */
async function currentSession(deps: ServerDeps, request: FastifyRequest) {
  if (request.principal?.via !== "session") return undefined;
  const id = readCookie(request.headers.cookie, SESSION_COOKIE);
  return id === undefined ? undefined : deps.sessions.resolve(id);
}

export const sessionRoutes: RouteModule = (app, deps) => {
  app.post(
    "/api/session",
    {
      schema: {
        summary: "Log in a browser: trade a token for a session cookie",
        description:
          "Sets an HttpOnly, SameSite=Strict `colony_session` cookie and a readable " +
          "`colony_csrf` cookie. Requests made with the session cookie that change something " +
          "must send the CSRF token in the X-Colony-CSRF header.",
        tags: TAGS,
        security: [],
        body: LoginBody,
        response: { 201: SessionSchema, ...errorResponses(400) },
      },
    },
    async (request, reply) => {
      const token = tokenFromHeader(request.body.token) ?? "";
      const principal = deps.auth.disabled
        ? ({ name: "anonymous", role: "admin", via: "none" } as const)
        : await deps.auth.authenticate({ authorization: token });
      if (!principal) {
        throw new ColonyError(
          "COLONY_UNAUTHENTICATED",
          "the token is unknown or revoked; use the admin token in the data dir, or make one with 'colony token create'",
          { status: 401 },
        );
      }
      if (principal.role === "ant") {
        throw new ColonyError(
          "COLONY_FORBIDDEN",
          "an ant token only opens /ws/ants; log in with a reader, writer or admin token",
          { status: 403 },
        );
      }
      const created = deps.sessions.create(
        principal,
        deps.auth.disabled ? undefined : hashToken(token),
      );
      setSessionCookies(deps, reply, created);
      return reply.status(201).send(sessionView(deps, principal, created.session.csrf));
    },
  );

  app.get(
    "/api/session",
    {
      config: { role: "reader" },
      schema: {
        summary: "Who the caller is (and a session's CSRF token)",
        tags: TAGS,
        response: { 200: SessionSchema, ...errorResponses() },
      },
    },
    async (request) => {
      const session = await currentSession(deps, request);
      return sessionView(deps, request.principal!, session?.csrf ?? null);
    },
  );

  app.delete(
    "/api/session",
    {
      config: { role: "reader" },
      schema: {
        summary: "Log out: end this session and clear its cookies",
        tags: TAGS,
        response: { 204: Type.Null({ description: "Logged out" }), ...errorResponses() },
      },
    },
    async (request, reply) => {
      const id = readCookie(request.headers.cookie, SESSION_COOKIE);
      if (id !== undefined) deps.sessions.destroy(id);
      const secure = secureCookies(deps);
      void reply.header("set-cookie", [
        serializeCookie(SESSION_COOKIE, "", { httpOnly: true, secure, maxAge: 0 }),
        serializeCookie(CSRF_COOKIE, "", { httpOnly: false, secure, maxAge: 0 }),
      ]);
      return reply.status(204).send(null);
    },
  );

  app.post(
    "/api/login-links",
    {
      config: { role: "admin" },
      schema: {
        summary: "A one-time login link for the dashboard, as the caller",
        description:
          "The link logs a browser in once, within the validity period (10 minutes), with " +
          "the caller's role. Like the link the server prints at start.",
        tags: TAGS,
        response: { 201: LoginLinkSchema, ...errorResponses() },
      },
    },
    async (request, reply) => {
      const principal = request.principal!;
      let tokenHash: string | undefined;
      if (principal.via === "session") tokenHash = (await currentSession(deps, request))?.tokenHash;
      else if (principal.via === "token") {
        tokenHash = hashToken(tokenFromHeader(request.headers.authorization) ?? "");
      } else if (!deps.auth.disabled) {
        throw new ColonyError(
          "COLONY_FORBIDDEN",
          "login links are made for token holders; send a token in the Authorization header",
          { status: 403 },
        );
      }
      const nonce = deps.sessions.createLoginLink({ ...principal, via: "token" }, tokenHash);
      return reply.status(201).send({
        url: `${deps.baseUrl}/login?once=${nonce}`,
        expires_at: new Date(Date.now() + deps.sessions.loginLinkMs).toISOString(),
      });
    },
  );

  app.get(
    "/login",
    {
      schema: {
        summary: "Follow a one-time login link: sets the session cookies and goes to the dashboard",
        tags: TAGS,
        security: [],
        querystring: Type.Object({ once: Type.Optional(Type.String({ maxLength: 100 })) }),
        response: { 303: Type.Null({ description: "To the dashboard" }) },
      },
    },
    async (request, reply) => {
      void reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer");
      const nonce = request.query.once;
      const created = nonce ? await deps.sessions.redeem(nonce) : undefined;
      if (!created) return reply.redirect("/#/login/expired", 303);
      setSessionCookies(deps, reply, created);
      return reply.redirect("/#/jobs", 303);
    },
  );
};
