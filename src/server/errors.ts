/**
 * One error shape for every HTTP error: `{error: {code, message}}` with the right status.
 * Validation failures name the field; body-size and content-type refusals say the limit
 * or the accepted types.
 */
import { ColonyError } from "../core/errors.ts";
import type { App } from "./app.ts";
import type { FastifyRequest } from "fastify";

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export function errorBody(
  code: string,
  message: string,
  details?: Record<string, unknown>,
): ErrorBody {
  return { error: details ? { code, message, details } : { code, message } };
}

interface FastifyLikeError extends Error {
  statusCode?: number;
  code?: string;
  validation?: Array<{
    instancePath?: string;
    keyword?: string;
    message?: string;
    params?: Record<string, unknown>;
  }>;
  validationContext?: string;
}

/**
 * When a route that takes JSON got a whole body of another kind (YAML sent to submit a
 * job, say): which Content-Type it takes and, for a submit, where YAML goes.
 */
function wholeBodyHint(where: string, request: FastifyRequest): string {
  const type = String(request.headers["content-type"] ?? "")
    .split(";")[0]!
    .trim();
  // Only a body read as text (YAML, plain text) is in the wrong format; a body that was
  // read as JSON whatever its Content-Type (as /jobs does) has a different fault.
  if (where !== "body" || typeof request.body !== "string") return "";
  if (type === "" || type === "application/json") return "";
  const submit = request.method === "POST" && request.url.split("?")[0] === "/api/job-requests";
  return (
    `; this route takes a JSON object (Content-Type: application/json), not ${type}` +
    (submit
      ? ': save a YAML job definition with POST /api/job-definitions, then submit {"job_type": ...}'
      : "")
  );
}

export function installErrorHandling(app: App): void {
  app.setErrorHandler((error: FastifyLikeError, request, reply) => {
    if (error instanceof ColonyError) {
      return reply.status(error.status).send(errorBody(error.code, error.message, error.details));
    }
    if (error.validation) {
      const first = error.validation[0];
      let path = first?.instancePath ?? "";
      let extra =
        first?.params?.additionalProperty ??
        (first?.params?.additionalProperties as string[] | undefined)?.[0];
      // TypeBox reports additionalProperties: false as the `false` schema of the extra key.
      if (extra === undefined && first?.message === "schema is false" && path.includes("/")) {
        extra = path.slice(path.lastIndexOf("/") + 1);
        path = path.slice(0, path.lastIndexOf("/"));
      }
      const where = `${error.validationContext ?? "body"}${path.replace(/\//g, ".")}`;
      const what = extra
        ? `unknown field '${String(extra)}'`
        : first?.keyword === "minLength" && first.params?.limit === 1
          ? "must not be empty"
          : (first?.message ?? "is invalid");
      return reply
        .status(400)
        .send(errorBody("COLONY_VALIDATION", `${where}: ${what}${wholeBodyHint(where, request)}`));
    }
    switch (error.code) {
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return reply
          .status(413)
          .send(
            errorBody(
              "COLONY_BODY_TOO_LARGE",
              `the request body is larger than the limit of ${app.initialConfig.bodyLimit} bytes`,
            ),
          );
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return reply
          .status(415)
          .send(
            errorBody(
              "COLONY_UNSUPPORTED_MEDIA_TYPE",
              `unsupported Content-Type '${request.headers["content-type"] ?? ""}'; send application/json (or application/yaml where YAML is accepted)`,
            ),
          );
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
        return reply
          .status(400)
          .send(errorBody("COLONY_VALIDATION", "the body is empty; send a JSON object"));
      case "FST_ERR_CTP_INVALID_JSON_BODY":
      case undefined:
        break;
    }
    if (error instanceof SyntaxError || error.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
      return reply
        .status(400)
        .send(errorBody("COLONY_MALFORMED_JSON", `malformed JSON body: ${error.message}`));
    }
    const status = error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    if (status >= 500) request.log.error(error);
    return reply
      .status(status)
      .send(
        errorBody(
          status >= 500 ? "COLONY_INTERNAL" : (error.code ?? "COLONY_BAD_REQUEST"),
          status >= 500 ? `internal error: ${error.message}` : error.message,
        ),
      );
  });
  app.setNotFoundHandler((request, reply) => {
    void reply
      .status(404)
      .send(
        errorBody(
          "COLONY_NOT_FOUND",
          `no route ${request.method} ${request.url.split("?")[0]}; see /api/openapi.json`,
        ),
      );
  });
}

/** Seconds a client is told to wait before it sends a request refused at shutdown again. */
const SHUTDOWN_RETRY_AFTER_S = 5;

/**
 * From the moment the server starts to close, every new request is answered 503
 * COLONY_SHUTTING_DOWN, saying that nothing of it was done and to send it again (with
 * Retry-After), and its connection is closed. Requests already in progress finish.
 * (Fastify's own return503OnClosing answered a bare "Service Unavailable".)
 */
export function installShutdownRefusal(app: App): void {
  let closing = false;
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });
  app.addHook("onRequest", (_request, reply, done) => {
    if (!closing) return done();
    void reply
      .status(503)
      .header("retry-after", String(SHUTDOWN_RETRY_AFTER_S))
      .header("connection", "close")
      .send(
        errorBody(
          "COLONY_SHUTTING_DOWN",
          "the server is shutting down, so nothing of this request was done; send it again " +
            "once the server is back (a restart takes a few seconds)",
        ),
      );
  });
}
