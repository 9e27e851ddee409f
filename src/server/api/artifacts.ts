/**
 * /api/artifacts: the files tasks and processes stored (docs/artifacts.md): list with
 * filters and cursor paging (newest first), show one, download its bytes.
 */
import { Type, type Static } from "typebox";
import { ValidationError } from "../../core/errors.ts";
import type { Artifact } from "../../store/async-action-store.ts";
import type { RouteModule } from "../app.ts";
import { sendArtifact } from "../hook/routes.ts";
import { isRelayed } from "../relay.ts";
import { errorResponses } from "../schemas.ts";

const TAGS = ["artifacts"];
const Timestamp = Type.String({ description: "ISO 8601 time (UTC)" });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const ArtifactSchema = Type.Object({
  id: Type.String({ description: "art_ and 12 letters or digits" }),
  job_request_id: Nullable(Type.Integer()),
  task_execution_id: Nullable(Type.String()),
  task_type: Nullable(Type.String()),
  store: Type.String(),
  uuid: Type.String({
    description: "The hook's {uuid}: an execution's JOB_ID or a job request id",
  }),
  property: Type.String(),
  index: Type.Integer(),
  name: Type.String({
    description: "File name (a task artifact's path relative to its working directory)",
  }),
  mimetype: Type.String(),
  size: Type.Integer(),
  md5: Type.String(),
  sha256: Type.String(),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  created_at: Timestamp,
  expires_at: Nullable(Timestamp),
});
export type ArtifactView = Static<typeof ArtifactSchema>;

export const ArtifactPageSchema = Type.Object({
  items: Type.Array(ArtifactSchema),
  next_cursor: Nullable(Type.String({ description: "Pass as cursor for the next (older) page" })),
});
export type ArtifactPageView = Static<typeof ArtifactPageSchema>;

const ListQuery = Type.Object(
  {
    job_request_id: Type.Optional(Type.String({ pattern: "^[1-9][0-9]{0,15}$" })),
    task_type: Type.Optional(Type.String()),
    execution_id: Type.Optional(Type.String({ description: "A task execution's unit id" })),
    uuid: Type.Optional(Type.String()),
    property: Type.Optional(Type.String()),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
const IdParams = Type.Object({ id: Type.String({ description: "An artifact id (art_...)" }) });

export function artifactView(a: Artifact): ArtifactView {
  return {
    id: a.id,
    job_request_id: a.jobRequestId ?? null,
    task_execution_id: a.taskExecutionId ?? null,
    task_type: a.taskType ?? null,
    store: a.store,
    uuid: a.ownerId,
    property: a.property,
    index: a.index,
    name: a.name,
    mimetype: a.mimetype,
    size: a.size,
    md5: a.md5,
    sha256: a.sha256,
    metadata: a.metadata,
    created_at: a.createdAt.toISOString(),
    expires_at: a.expiresAt?.toISOString() ?? null,
  };
}

export const artifactRoutes: RouteModule = (app, deps) => {
  const { artifacts } = deps.runtime.asyncActions;
  const store = deps.runtime.store;

  app.get(
    "/api/artifacts",
    {
      config: { role: "reader" },
      schema: {
        summary: "List artifacts, newest first, with filters and cursor paging",
        tags: TAGS,
        querystring: ListQuery,
        response: { 200: ArtifactPageSchema, ...errorResponses(400) },
      },
    },
    async (request) => {
      const q = request.query;
      if (q.cursor !== undefined && !/^[1-9][0-9]{0,15}$/.test(q.cursor)) {
        throw new ValidationError(
          `querystring.cursor: '${q.cursor}' is not a cursor this server gave; pass next_cursor from the previous page`,
        );
      }
      const page = await store.asyncActions.listArtifacts({
        ...(q.job_request_id ? { jobRequestId: Number(q.job_request_id) } : {}),
        ...(q.task_type ? { taskType: q.task_type } : {}),
        ...(q.execution_id ? { taskExecutionId: q.execution_id } : {}),
        ...(q.uuid ? { ownerId: q.uuid } : {}),
        ...(q.property ? { property: q.property } : {}),
        ...(q.cursor ? { before: Number(q.cursor) } : {}),
        limit: q.limit ?? 50,
      });
      return {
        items: page.items.map(artifactView),
        next_cursor: page.nextCursor === undefined ? null : String(page.nextCursor),
      };
    },
  );

  app.get(
    "/api/artifacts/:id",
    {
      config: { role: "reader" },
      schema: {
        summary: "Show an artifact",
        tags: TAGS,
        params: IdParams,
        response: { 200: ArtifactSchema, ...errorResponses(404) },
      },
    },
    async (request) => artifactView(await artifacts.get(request.params.id)),
  );

  app.get(
    "/api/artifacts/:id/download",
    {
      config: { role: "reader" },
      schema: {
        summary: "Download an artifact's bytes",
        tags: TAGS,
        params: IdParams,
        response: {
          200: { description: "The file", content: { "application/octet-stream": { schema: {} } } },
          ...errorResponses(404),
        },
      },
    },
    async (request, reply) => {
      const artifact = await artifacts.get(request.params.id);
      // A relayed request is answered from here only (a shared URL could send it round).
      const elsewhere = !isRelayed(request.headers);
      return sendArtifact(reply, artifact, await artifacts.open(artifact, { elsewhere }));
    },
  );
};
