/**
 * /jobs: the process-jobs API of seed 003 (SPEC section 8), so that the seed's curl
 * sessions work as written: POST creates, PUT {"status"} starts or stops, GET shows
 * status, logs and reasonForExit; GET /jobs/{id}/logs streams the output to any number
 * of followers. Writers may do everything, readers only GET.
 *
 * Bodies are read as JSON whatever their Content-Type says, as the seed's Go service
 * reads them: `curl -d '{"command": "ls"}'` sends application/x-www-form-urlencoded.
 * A form-encoded body that is not JSON (`-d command=ls`) is read as a form.
 */
import type { FastifyRequest } from "fastify";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import { NotFoundError, ValidationError } from "../../core/errors.ts";
import { parseDuration } from "../../core/duration.ts";
import {
  PROCESS_JOB_TARGETS,
  parseProcessJobId,
  type ProcessJobTarget,
} from "../../core/process-job.ts";
import type { App, RouteModule } from "../app.ts";
import { errorResponses } from "../schemas.ts";
import { ProcessJobService } from "./process-jobs.ts";
import {
  CreateProcessJobBody,
  ProcessJobLogsQuery,
  ProcessJobParams,
  ProcessJobSchema,
  UpdateProcessJobBody,
} from "./schemas.ts";

const TAGS = ["process jobs (seed 003)"];

/** JSON whatever the Content-Type; a form-encoded body that is not JSON as a form. */
function parseBody(
  request: FastifyRequest,
  body: string,
  done: (error: Error | null, value?: unknown) => void,
): void {
  if (body.trim() === "") return done(null, undefined);
  const type = request.headers["content-type"] ?? "";
  if (/^application\/x-www-form-urlencoded\b/i.test(type) && !/^\s*[{["]/.test(body)) {
    return done(null, Object.fromEntries(new URLSearchParams(body)));
  }
  try {
    done(null, JSON.parse(body) as unknown);
  } catch (error) {
    done(error as Error); // a SyntaxError: 400 COLONY_MALFORMED_JSON with its position
  }
}

function jobId(text: string): number {
  const id = parseProcessJobId(text);
  if (id === undefined) throw new NotFoundError("process_job", text, "create one with POST /jobs");
  return id;
}

function timeoutOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new ValidationError(
      `body.timeout: '${text}' is not a positive duration; write e.g. 90s, 5m or 1h30m`,
    );
  }
  return ms;
}

function isTarget(value: string): value is ProcessJobTarget {
  return (PROCESS_JOB_TARGETS as readonly string[]).includes(value);
}

export const processJobRoutes: RouteModule = async (app, deps) => {
  const executor = deps.runtime.executors.get("SHELL");
  if (!executor) throw new Error("the process-jobs API needs the SHELL executor");
  const service = new ProcessJobService({
    store: deps.runtime.store,
    executor,
    dataDir: deps.runtime.dataDir,
    nodeId: deps.config.nodeId,
    defaultTimeoutMs: deps.config.jobsApi.defaultTimeoutMs,
    stopGraceMs: deps.config.jobsApi.stopGraceMs,
    jobHook: deps.runtime.asyncActions.hook,
    warn: (message) => app.log.warn(message),
  });
  // Jobs a previous (crashed) server left `started`: re-attach, or record how they ended.
  await service.recover();
  // preClose, not onClose: Fastify waits for open responses (log followers) before
  // onClose, and those end only once their processes do.
  app.addHook("preClose", () => service.shutdown());
  app.addHook("onClose", () => service.shutdown());

  await app.register((plain, _options, ready) => {
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>() as unknown as App;
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "string" }, parseBody);

    scope.post(
      "/jobs",
      {
        config: { role: "writer" },
        schema: {
          summary: "Create a process job (status created)",
          description:
            "The body is read as JSON whatever its Content-Type. Answers 201 with the job " +
            'and Location: /jobs/{id}. Start it with PUT /jobs/{id} {"status": "started"}.',
          tags: TAGS,
          body: CreateProcessJobBody,
          response: { 201: ProcessJobSchema, ...errorResponses(400, 413) },
        },
      },
      async (request, reply) => {
        const job = await service.create({
          command: request.body.command,
          timeoutMs: timeoutOf(request.body.timeout),
          ...(request.principal ? { createdBy: request.principal.name } : {}),
        });
        const { view } = await service.view(job);
        return reply.status(201).header("location", `/jobs/${view.id}`).send(view);
      },
    );

    scope.put(
      "/jobs/:id",
      {
        config: { role: "writer" },
        schema: {
          summary: "Start or stop a process job",
          description:
            '{"status": "started"} starts a created job; {"status": "stopped"} stops a started ' +
            "one (SIGTERM to its process group, SIGKILL after jobs_api.stop_grace) with " +
            "reasonForExit API and answers once the process is gone. 400 for another status, " +
            "404 for an unknown id, 422 when the job is not in a status the change starts from.",
          tags: TAGS,
          params: ProcessJobParams,
          body: UpdateProcessJobBody,
          response: { 200: ProcessJobSchema, ...errorResponses(400, 404, 409, 413, 422, 503) },
        },
      },
      async (request, reply) => {
        const id = jobId(request.params.id);
        const status = request.body.status;
        if (!isTarget(status)) {
          throw new ValidationError(
            `body.status: '${status}' is not a status a job can be moved to; send ` +
              `${PROCESS_JOB_TARGETS.map((s) => `"${s}"`).join(" or ")}`,
          );
        }
        const job = await service.setStatus(id, status);
        const { view, omittedBytes } = await service.view(job);
        if (omittedBytes > 0) void reply.header("x-colony-logs-omitted-bytes", omittedBytes);
        return view;
      },
    );

    scope.get(
      "/jobs/:id",
      {
        config: { role: "reader" },
        schema: {
          summary: "A process job: status, logs so far, reasonForExit",
          tags: TAGS,
          params: ProcessJobParams,
          response: { 200: ProcessJobSchema, ...errorResponses(404) },
        },
      },
      async (request, reply) => {
        const { view, omittedBytes } = await service.view(
          await service.get(jobId(request.params.id)),
        );
        if (omittedBytes > 0) void reply.header("x-colony-logs-omitted-bytes", omittedBytes);
        return view;
      },
    );

    scope.get(
      "/jobs/:id/logs",
      {
        config: { role: "reader" },
        schema: {
          summary: "Stream a process job's output from its first byte",
          description:
            "text/plain: every byte the process wrote (stdout and stderr), from the start, " +
            "held open and streamed until the process ends (a job not started yet is waited " +
            "for). Any number of clients may follow one job. follow=0 answers what is there now.",
          tags: TAGS,
          params: ProcessJobParams,
          querystring: ProcessJobLogsQuery,
          response: {
            200: { description: "The output bytes", content: { "text/plain": { schema: {} } } },
            ...errorResponses(404),
          },
        },
      },
      async (request, reply) => {
        const job = await service.get(jobId(request.params.id));
        const follow = request.query.follow ?? true;
        void reply
          .type("text/plain; charset=utf-8")
          .header("cache-control", "no-store")
          .header("x-content-type-options", "nosniff");
        if (follow) void reply.header("x-accel-buffering", "no");
        return reply.send(service.followLogs(job, follow));
      },
    );
    ready();
  });
};
