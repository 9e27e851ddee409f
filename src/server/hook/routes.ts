/**
 * /async: the job hook of seed 004 (SPEC section 9), byte-compatible with the seed's
 * Python primitives. Requests carry X-Job-Id / X-Job-Time / X-Job-Hash (HMAC of the
 * time with the execution's JOB_SECRET_KEY), not colony tokens; the two blob URLs are
 * capabilities (a one-time upload id, a signed download link) that the hook hands out.
 *
 *   POST /async, POST /async/status            report status, details, results, logs
 *   PUT  /async/upload/{store}/{uuid}/{prop}   announce an upload (hash + challenge)
 *   PUT  /async/blobs/{uploadId}               the bytes of an announced upload
 *   GET  /async/download/{store}/{uuid}/{prop}/{index}   where to get a file
 *   GET  /async/blobs/{artifactId}?expires&sig the bytes
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { JobHook } from "../../hook/job-hook.ts";
import type { App, RouteModule } from "../app.ts";
import { ErrorSchema } from "../schemas.ts";

const TAGS = ["job hook (seed 004)"];

const Err = (description: string) => Type.Object(ErrorSchema.properties, { description });
const HOOK_ERRORS = {
  400: Err("Invalid body"),
  403: Err("Missing, stale or wrong X-Job-Time / X-Job-Hash"),
  404: Err("Missing or unknown X-Job-Id, or the execution has ended"),
};

const ReportBody = Type.Object(
  {
    status: Type.Optional(
      Type.Union([
        Type.String({ description: "QUEUED, STARTING, RUNNING, SUCCESS or ERROR" }),
        Type.Null(),
      ]),
    ),
    errorMessage: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    statusDetails: Type.Optional(Type.Unknown({ description: "Any JSON, shown on the task" })),
    results: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])),
    logs: Type.Optional(Type.Union([Type.Array(Type.String()), Type.Null()])),
  },
  { additionalProperties: true },
);

const ActionView = Type.Object(
  {
    uuid: Type.String(),
    type: Type.String(),
    status: Type.String(),
    errorMessage: Type.Optional(Type.String()),
    results: Type.Record(Type.String(), Type.Unknown()),
    _lastJobUpdate: Type.Union([Type.Number(), Type.Null()]),
    job: Type.Optional(
      Type.Object({
        jobRequestId: Type.Integer(),
        jobType: Type.Optional(Type.String()),
        taskType: Type.Optional(Type.String()),
        attempt: Type.Optional(Type.Integer()),
        state: Type.String(),
      }),
    ),
  },
  { description: "The action (never its key)" },
);

const UploadParams = Type.Object({
  store: Type.String(),
  uuid: Type.String(),
  property: Type.String(),
});
const DownloadParams = Type.Object({
  store: Type.String(),
  uuid: Type.String(),
  property: Type.String(),
  index: Type.String(),
});
const UploadBody = Type.Object(
  {
    hash: Type.Optional(Type.String({ description: "md5 of the content, hex" })),
    challenge: Type.Optional(Type.String({ description: 'md5 of "WEBDA" + the content, hex' })),
    metadata: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: true },
);
const UploadAnswer = Type.Object({
  done: Type.Boolean(),
  method: Type.Optional(Type.Literal("PUT")),
  url: Type.Optional(Type.String()),
  md5: Type.String({ description: "The announced md5, base64" }),
});
const DownloadAnswer = Type.Object({
  Location: Type.String({ description: "A signed URL serving the bytes (no credentials needed)" }),
  Map: Type.Object({
    hash: Type.String(),
    size: Type.Integer(),
    mimetype: Type.String(),
    name: Type.String(),
    metadata: Type.Record(Type.String(), Type.Unknown()),
  }),
});

export const hookRoutes: RouteModule = async (app, deps) => {
  const hook: JobHook = deps.runtime.asyncActions.hook;
  const requests = deps.metrics.counter({
    name: "colony_hook_requests_total",
    help: "Job hook requests by route and HTTP status",
    labelNames: ["route", "status"],
  });
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.config.hookRoute;
    if (route) requests.inc({ route, status: String(reply.statusCode) });
  });
  const caller = (request: FastifyRequest) => hook.caller(request.headers);

  for (const url of ["/async", "/async/status"]) {
    app.post(
      url,
      {
        config: { hookRoute: "status" },
        // send_status() without data posts no body at all: a report of nothing (a heartbeat).
        preValidation: async (request) => {
          request.body ??= {};
        },
        schema: {
          summary: url === "/async" ? "Report progress (same as /async/status)" : "Report progress",
          description:
            "Records status, statusDetails and errorMessage on the task, appends `logs` lines to " +
            "its output and merges `results` into its context. status ERROR fails the task even " +
            "if its process exits 0. Answers the action JSON.",
          tags: TAGS,
          security: [],
          body: Type.Optional(ReportBody),
          response: { 200: ActionView, ...HOOK_ERRORS },
        },
      },
      async (request) => hook.report(await caller(request), request.body ?? undefined),
    );
  }

  app.put(
    "/async/upload/:store/:uuid/:property",
    {
      config: { hookRoute: "upload" },
      schema: {
        summary: "Announce an upload: {hash, challenge, metadata}",
        description:
          "Answers {done: true} when that content is stored already (the challenge proves the " +
          "caller has it: nothing to send), else {done: false, method: PUT, url}: PUT the raw bytes there.",
        tags: TAGS,
        security: [],
        params: UploadParams,
        body: Type.Optional(UploadBody),
        response: { 200: UploadAnswer, ...HOOK_ERRORS },
      },
    },
    async (request) => hook.upload(await caller(request), request.params, request.body),
  );

  app.get(
    "/async/download/:store/:uuid/:property/:index",
    {
      config: { hookRoute: "download" },
      schema: {
        summary: "Where to download a file: {Location, Map}",
        tags: TAGS,
        security: [],
        params: DownloadParams,
        response: { 200: DownloadAnswer, ...HOOK_ERRORS },
      },
    },
    async (request) => hook.download(await caller(request), request.params),
  );

  app.get(
    "/async/blobs/:id",
    {
      config: { hookRoute: "blob-download" },
      schema: {
        summary: "The bytes behind a download Location (signed URL)",
        tags: TAGS,
        security: [],
        params: Type.Object({ id: Type.String() }),
        querystring: Type.Object({
          expires: Type.Optional(Type.String()),
          sig: Type.Optional(Type.String()),
        }),
        response: {
          200: { description: "The file", content: { "application/octet-stream": { schema: {} } } },
          403: Err("Bad or expired signature"),
          404: Err("No such artifact"),
        },
      },
    },
    async (request, reply) => {
      const artifact = await hook.artifacts.signed(
        request.params.id,
        request.query.expires,
        request.query.sig,
      );
      return sendArtifact(reply, artifact, await hook.artifacts.open(artifact));
    },
  );

  // The bytes of an upload arrive raw and are streamed to disk: no body parser buffers them.
  await app.register((plain, _options, ready) => {
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
    scope.put(
      "/async/blobs/:id",
      {
        config: { hookRoute: "blob-upload" },
        schema: {
          summary: "The bytes of an announced upload (its URL is single-use)",
          description:
            "Streamed to disk; refused with 400 (nothing kept) when they do not have the announced " +
            "md5 and challenge, 413 above artifacts.max_size.",
          tags: TAGS,
          security: [],
          params: Type.Object({ id: Type.String() }),
          response: {
            200: Type.Object({
              done: Type.Literal(true),
              id: Type.String(),
              hash: Type.String(),
              size: Type.Integer(),
            }),
            400: Err("The bytes do not match the announced hash or challenge"),
            404: Err("No such upload (expired or already used)"),
            413: Err("Larger than artifacts.max_size"),
          },
        },
      },
      async (request) => {
        const body = (request.body ?? request.raw) as NodeJS.ReadableStream;
        const type = request.headers["content-type"];
        const artifact = await hook.receiveUpload(request.params.id, body as never, type);
        return { done: true as const, id: artifact.id, hash: artifact.md5, size: artifact.size };
      },
    );
    ready();
  });
};

/** Streams an artifact with its type, length and a download file name. */
export function sendArtifact(
  reply: FastifyReply,
  artifact: { name: string; mimetype: string; size: number; md5: string },
  body: NodeJS.ReadableStream,
): FastifyReply {
  const file = artifact.name.split("/").pop() || "artifact";
  return reply
    .type(artifact.mimetype)
    .header("content-length", artifact.size)
    .header("etag", `"${artifact.md5}"`)
    .header("x-content-type-options", "nosniff")
    .header("content-disposition", `attachment; filename*=UTF-8''${encodeURIComponent(file)}`)
    .send(body);
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Labels the hook's request metrics. */
    hookRoute?: string;
  }
}
