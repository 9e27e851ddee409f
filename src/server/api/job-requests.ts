/**
 * /api/job-requests: submit (a saved job type or an inline definition), list with
 * filters and cursor paging (newest first), show with tasks, cancel, restart. Every
 * state change goes through the engine.
 */
import { ConflictError, ValidationError } from "../../core/errors.ts";
import type { JobRequestFilter } from "../../core/job-request.ts";
import { isFinal, isState, STATES, type State } from "../../core/states.ts";
import type { RouteModule } from "../app.ts";
import {
  errorResponses,
  JobRequestIdParams,
  JobRequestListQuery,
  JobRequestPageSchema,
  JobRequestSchema,
  SubmitBody,
} from "../schemas.ts";
import { jobRequestView } from "../views.ts";
import { definitionFromBody } from "./job-definitions.ts";

const TAGS = ["job requests"];

/** Parses a `cursor` this server handed out (a job request id); anything else is a 400. */
export function parseCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined || cursor === "") return undefined;
  if (!/^[1-9][0-9]{0,15}$/.test(cursor) || !Number.isSafeInteger(Number(cursor))) {
    throw new ValidationError(
      `querystring.cursor: '${cursor}' is not a cursor this server gave; pass next_cursor from the previous page`,
    );
  }
  return Number(cursor);
}

function parseStates(text: string | undefined): State[] | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  const states = text.split(",").map((s) => s.trim().toUpperCase());
  for (const s of states) {
    if (!isState(s))
      throw new ValidationError(
        `querystring.state: unknown state '${s}'; use one or more of ${STATES.join(", ")}`,
      );
  }
  return states as State[];
}

function parseScheduledAt(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d\d-\d\dT/.test(text) || Number.isNaN(ms)) {
    throw new ValidationError(
      `body.scheduled_at: '${text}' is not an ISO 8601 time; write e.g. 2030-01-02T15:04:05Z`,
    );
  }
  return new Date(ms);
}

export const jobRequestRoutes: RouteModule = (app, deps) => {
  const { engine, store } = deps.runtime;

  app.post(
    "/api/job-requests",
    {
      config: { role: "writer" },
      schema: {
        summary: "Submit a job: a saved job type, or an inline definition",
        description:
          "`{job_type, params?, scheduled_at?}` runs the saved definition of job_type; " +
          "`{definition, params?, scheduled_at?}` runs the given definition (YAML text or " +
          "a JSON object) without saving it. The request is durable when the answer is 201.",
        tags: TAGS,
        body: SubmitBody,
        response: {
          201: JobRequestSchema,
          ...errorResponses(400, 404, 409, 413, 415),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      if ((body.job_type === undefined) === (body.definition === undefined)) {
        throw new ValidationError(
          "body: give exactly one of job_type (a saved definition) and definition (inline YAML or JSON)",
        );
      }
      const scheduledAt = parseScheduledAt(body.scheduled_at);
      const submittedBy = request.principal?.name;
      const params = body.params ?? {};
      const job =
        body.job_type !== undefined
          ? await engine.submitType(body.job_type, params, { scheduledAt, submittedBy })
          : await engine.submit({
              definition: (await definitionFromBody(body.definition)).definition,
              params,
              scheduledAt,
              submittedBy,
            });
      return reply
        .status(201)
        .header("location", `/api/job-requests/${job.id}`)
        .send(jobRequestView(job));
    },
  );

  app.get(
    "/api/job-requests",
    {
      config: { role: "reader" },
      schema: {
        summary: "List job requests, newest first, with filters and cursor paging",
        tags: TAGS,
        querystring: JobRequestListQuery,
        response: { 200: JobRequestPageSchema, ...errorResponses(400) },
      },
    },
    async (request) => {
      const q = request.query;
      const filter: JobRequestFilter = {
        state: parseStates(q.state),
        jobType: q.job_type || undefined,
        before: parseCursor(q.cursor),
        limit: q.limit ?? 50,
      };
      const page = await store.listJobRequests(filter);
      return {
        items: page.items.map((job) => jobRequestView(job)),
        next_cursor: page.nextCursor === undefined ? null : String(page.nextCursor),
      };
    },
  );

  app.get(
    "/api/job-requests/:id",
    {
      config: { role: "reader" },
      schema: {
        summary: "Show a job request with every task execution",
        tags: TAGS,
        params: JobRequestIdParams,
        response: { 200: JobRequestSchema, ...errorResponses(400, 404) },
      },
    },
    async (request) => {
      const job = await engine.getJob(Number(request.params.id));
      return jobRequestView(job, job.tasks);
    },
  );

  app.post(
    "/api/job-requests/:id/cancel",
    {
      config: { role: "writer" },
      schema: {
        summary: "Cancel a job request (running tasks stop; always_run tasks still run)",
        description:
          "Answers at once with the request; it reaches CANCELLED when its tasks have stopped. " +
          "Cancelling a request that already ended changes nothing.",
        tags: TAGS,
        params: JobRequestIdParams,
        response: { 200: JobRequestSchema, ...errorResponses(400, 404) },
      },
    },
    async (request) => jobRequestView(await engine.cancel(Number(request.params.id))),
  );

  app.post(
    "/api/job-requests/:id/restart",
    {
      config: { role: "writer" },
      schema: {
        summary: "Run a FAILED or CANCELLED job request again, as its next attempt",
        description: "Tasks run anew. A COMPLETED or unfinished request cannot restart (409).",
        tags: TAGS,
        params: JobRequestIdParams,
        response: { 200: JobRequestSchema, ...errorResponses(400, 404, 409) },
      },
    },
    async (request) => {
      const id = Number(request.params.id);
      const current = await engine.getJob(id);
      if (current.state === "COMPLETED") {
        throw new ConflictError(
          `job request ${id} COMPLETED; only FAILED or CANCELLED requests restart (submit it again to run it anew)`,
        );
      }
      if (!isFinal(current.state)) {
        throw new ConflictError(
          `job request ${id} is still ${current.state}; cancel it first, or wait for it to end, then restart`,
        );
      }
      return jobRequestView(await engine.restart(id));
    },
  );
};
