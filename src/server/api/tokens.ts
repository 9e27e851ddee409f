/**
 * /api/tokens (admin): create a token (shown once, in the answer), list tokens (never
 * the tokens themselves: the store only has their hashes), revoke one.
 */
import { Type, type Static } from "typebox";
import type { StoredToken } from "../../store/store.ts";
import type { RouteModule } from "../app.ts";
import { newToken } from "../auth/token-authenticator.ts";
import type { Role } from "../principal.ts";
import { errorResponses } from "../schemas.ts";

const TAGS = ["tokens"];
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ description: "ISO 8601 time (UTC)" });
const RoleSchema = Type.Union(
  [Type.Literal("reader"), Type.Literal("writer"), Type.Literal("admin"), Type.Literal("ant")],
  {
    description:
      "reader: read-only API; writer: also submit, cancel, define; admin: everything incl. tokens; ant: only /ws/ants",
  },
);

// Every role of principal.ts, and nothing else (a new role fails to compile here).
const _roles: Record<Role, true> & Record<Static<typeof RoleSchema>, true> = {
  reader: true,
  writer: true,
  admin: true,
  ant: true,
};

export const NewTokenBody = Type.Object(
  {
    role: RoleSchema,
    name: Type.String({
      minLength: 1,
      maxLength: 200,
      description: "What the token is for (shown in lists and as the submitter of jobs)",
    }),
  },
  { additionalProperties: false },
);
export type NewTokenBodyView = Static<typeof NewTokenBody>;

export const TokenSchema = Type.Object({
  id: Type.String({ description: "tok_ and 8 letters or digits; DELETE /api/tokens/{id} revokes" }),
  name: Type.String(),
  role: RoleSchema,
  created_at: Timestamp,
  created_by: Nullable(Type.String()),
  last_used_at: Nullable(Timestamp),
  revoked_at: Nullable(Timestamp),
});
export type TokenView = Static<typeof TokenSchema>;

export const CreatedTokenSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  token: Type.String({
    description: "The token itself. Shown only in this answer: the server keeps only its hash",
  }),
  created_at: Timestamp,
});
export type CreatedTokenView = Static<typeof CreatedTokenSchema>;

export const TokenListSchema = Type.Object({ items: Type.Array(TokenSchema) });
export type TokenListView = Static<typeof TokenListSchema>;

const TokenIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

export function tokenView(token: StoredToken): TokenView {
  return {
    id: token.id,
    name: token.name,
    role: token.role,
    created_at: token.createdAt.toISOString(),
    created_by: token.createdBy ?? null,
    last_used_at: token.lastUsedAt?.toISOString() ?? null,
    revoked_at: token.revokedAt?.toISOString() ?? null,
  };
}

export const tokenRoutes: RouteModule = (app, deps) => {
  const { store } = deps.runtime;

  app.post(
    "/api/tokens",
    {
      config: { role: "admin" },
      schema: {
        summary: "Create a token (the answer is the only time the token is shown)",
        tags: TAGS,
        body: NewTokenBody,
        response: { 201: CreatedTokenSchema, ...errorResponses(400, 413, 415) },
      },
    },
    async (request, reply) => {
      const { token, hash } = newToken();
      const stored = await store.createToken({
        name: request.body.name,
        role: request.body.role,
        hash,
        createdBy: request.principal?.name,
      });
      return reply.status(201).header("cache-control", "no-store").send({
        id: stored.id,
        name: stored.name,
        role: stored.role,
        token,
        created_at: stored.createdAt.toISOString(),
      });
    },
  );

  app.get(
    "/api/tokens",
    {
      config: { role: "admin" },
      schema: {
        summary: "List tokens, revoked ones too (never the tokens themselves)",
        tags: TAGS,
        response: { 200: TokenListSchema, ...errorResponses() },
      },
    },
    async () => ({ items: (await store.listTokens()).map(tokenView) }),
  );

  app.delete(
    "/api/tokens/:id",
    {
      config: { role: "admin" },
      schema: {
        summary: "Revoke a token (at once on this server; within 5 s on others sharing the store)",
        tags: TAGS,
        params: TokenIdParams,
        response: { 200: TokenSchema, ...errorResponses(404) },
      },
    },
    async (request) => {
      const revoked = await store.revokeToken(request.params.id);
      deps.auth.invalidate?.();
      return tokenView(revoked);
    },
  );
};
