/**
 * The HTTP application: one Fastify instance with TypeBox schemas (which validate every
 * body and produce /api/openapi.json), one error shape `{error: {code, message}}`, and
 * an auth hook driven by each route's `config.role`. Route groups live in one file each
 * (api/, compat-jobs/, later ants/ and hook/) and are registered here.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ServerOptions as HttpsServerOptions } from "node:https";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type RawServerDefault,
} from "fastify";
import swagger from "@fastify/swagger";
import { TypeBoxValidatorCompiler, type TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import type { Config } from "../config/config.ts";
import type { Embedded } from "../runtime/embedded.ts";
import type { UnitManager } from "../units/unit-manager.ts";
import { authenticateRequest, refuseWithoutClientCertificate } from "./auth/auth-hook.ts";
import type { Sessions } from "./auth/sessions.ts";
import type { LiveEvents } from "./live/live-events.ts";
import type { ColonyMetrics } from "./metrics/metrics.ts";
import { installErrorHandling, installShutdownRefusal } from "./errors.ts";
import { parseJsonBody } from "./json-body.ts";
import type { Principal, Role } from "./principal.ts";
import type { Relay } from "./relay.ts";

declare module "fastify" {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The least role a caller needs; omit for public routes (health). */
    role?: Role;
  }
}

/** Decides who a request comes from. Implemented by auth/token-authenticator.ts. */
export interface Authenticator {
  /**
   * Resolves the caller from the Authorization header value (a bare token or
   * `Bearer <token>`) and the verified client certificate's CN, if any. Undefined when
   * no credential was given or it is unknown/revoked.
   */
  authenticate(input: {
    authorization?: string;
    certificateCn?: string;
  }): Promise<Principal | undefined>;
  /** True when auth is switched off (--insecure-no-auth): every caller is admin. */
  readonly disabled: boolean;
  /** Forgets cached credentials (after a token is revoked). */
  invalidate?(): void;
}

export interface ServerDeps {
  config: Config;
  runtime: Embedded;
  auth: Authenticator;
  /** The URL clients and job processes use to reach this server. */
  baseUrl: string;
  /** The live event log behind GET /api/events; publish ant:*, unit:*... events here. */
  live: LiveEvents;
  /** Dashboard sessions (cookie auth). */
  sessions: Sessions;
  /** Prometheus metrics; features register theirs with metrics.counter/gauge/histogram. */
  metrics: ColonyMetrics;
  /** Fetches output other servers of the store hold, and checks their fetches (relay.ts). */
  relay?: Relay;
  /** Work units (src/units); absent in servers built without them. */
  units?: UnitManager;
}

export type App = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** A route group: registered on the app with the shared dependencies. */
export type RouteModule = (app: App, deps: ServerDeps) => void | Promise<void>;

export interface BuildAppOptions {
  https?: HttpsServerOptions;
  routes: RouteModule[];
  logger?: boolean;
}

export async function buildApp(deps: ServerDeps, options: BuildAppOptions): Promise<App> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: deps.config.bodyLimit,
    ...(options.https ? { https: options.https } : {}),
    // Slow clients cannot hold a connection forever: headers and bodies must arrive in time.
    requestTimeout: 120_000,
    connectionTimeout: 0,
    keepAliveTimeout: 72_000,
    // Requests that arrive while it closes get colony's own 503 (installShutdownRefusal).
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: "array", removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  installErrorHandling(app);
  installShutdownRefusal(app);

  // JSON bodies: a syntax error answers 400 with its line, column and position.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  // YAML bodies (job definitions) arrive as text.
  app.addContentTypeParser(
    ["application/yaml", "application/x-yaml", "text/yaml", "text/plain"],
    { parseAs: "string" },
    (_req, body, done) => done(null, body),
  );

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "colony API",
        version: "1",
        description: "colony's REST API. Errors are {error: {code, message}}.",
      },
      components: {
        securitySchemes: {
          token: {
            type: "http",
            scheme: "bearer",
            description: "A colony token; the bare token without 'Bearer ' works too.",
          },
        },
      },
      security: [{ token: [] }],
    },
  });

  app.addHook("onRequest", async (request, reply) => {
    // mTLS: with a client CA, every request (health and unknown routes too) needs a
    // certificate the CA signed; the TLS layer asks for one and this hook refuses with a
    // clear 401 instead of a handshake abort (see docs/security.md).
    if (deps.config.tls?.clientCa && (await refuseWithoutClientCertificate(request, reply))) {
      return reply;
    }
    const need = request.routeOptions.config.role;
    if (need === undefined) return;
    await authenticateRequest(deps.auth, request, reply, need, deps.sessions, deps.relay);
  });

  for (const route of options.routes) await route(app, deps);
  app.get("/api/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  return app;
}
