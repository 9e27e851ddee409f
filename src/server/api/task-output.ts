/**
 * Task output over HTTP: the bytes of one task execution's output (secrets masked),
 * from a byte `offset`, or only what comes next (`tail`), and with `follow` held open
 * until the execution ends. Followers share the engine's one file watch per file; a
 * client that goes away destroys its stream, which releases its share of the watch.
 */
import { statSync } from "node:fs";
import { join } from "node:path";
import { ColonyError, NotFoundError } from "../../core/errors.ts";
import { isUnitId } from "../../core/ids.ts";
import type { TaskExecution } from "../../core/job-request.ts";
import { unitDir } from "../../engine/task-runner.ts";
import type { FastifyReply, FastifyRequest } from "fastify";
import { isRelayed, OUTPUT_ELSEWHERE } from "../relay.ts";
import type { RouteModule, ServerDeps } from "../app.ts";
import {
  errorResponses,
  ExecutionIdParams,
  OutputQuery,
  OutputResponse,
  TaskOutputParams,
  TaskOutputQuery,
} from "../schemas.ts";

const TAGS = ["task output"];

interface OutputOptions {
  offset?: number;
  tail?: boolean;
  follow?: boolean;
}

/** Bytes of output an execution has written so far (0 before its first byte). */
export function outputSize(dataDir: string, executionId: string): number {
  try {
    return statSync(join(unitDir(dataDir, executionId), "stdout")).size;
  } catch {
    return 0;
  }
}

function outputHeaders(reply: FastifyReply, execution: TaskExecution): void {
  void reply
    .type("text/plain; charset=utf-8")
    .header("cache-control", "no-store")
    .header("x-content-type-options", "nosniff")
    .header("x-colony-execution", execution.id)
    .header("x-colony-task-type", execution.taskType);
}

async function sendOutput(
  deps: ServerDeps,
  request: FastifyRequest,
  execution: TaskExecution,
  options: OutputOptions,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { engine, dataDir } = deps.runtime;
  if (engine.heldElsewhere(execution)) {
    // Another server of the store ran it: the engine fetches the output from that one's
    // data dir (server/relay.ts). A relayed request never relays again (a shared URL
    // could send it round in circles).
    if (isRelayed(request.headers)) {
      throw new ColonyError(
        OUTPUT_ELSEWHERE,
        `the output of execution ${execution.id} is not on this server: another server's data dir holds it; give each server its own advertise_url (docs/deployment.md)`,
        { status: 502 },
      );
    }
    const body = await engine.outputStream(execution.id, options);
    outputHeaders(reply, execution);
    if (options.follow) void reply.header("x-accel-buffering", "no");
    // A client that goes away ends the fetch too (and the holder's file watch with it).
    reply.raw.once("close", () => body.destroy());
    return reply.send(body);
  }
  outputHeaders(reply, execution);
  const follow = options.follow ?? false;
  if (!follow) {
    // Not following and nothing written yet (not started, or a task that prints nothing).
    const size = outputSize(dataDir, execution.id);
    if (size === 0 || (!options.tail && (options.offset ?? 0) >= size)) return reply.send("");
    if (options.tail) return reply.send("");
  } else {
    // Proxies must not buffer a live stream.
    void reply.header("x-accel-buffering", "no");
  }
  const stream = await engine.outputStream(execution.id, {
    offset: options.offset,
    tail: options.tail,
    follow,
  });
  return reply.send(stream);
}

export const taskOutputRoutes: RouteModule = (app, deps) => {
  const { engine, store } = deps.runtime;
  const description =
    "text/plain bytes of the task's output, secrets masked. `offset` starts at that byte; " +
    "`tail=1` starts at the current end; `follow=1` keeps the response open and streams new " +
    "output until the task ends (a task that already ended: all of it, then the response ends). " +
    "Header X-Colony-Execution names the execution (its unit id).";

  app.get(
    "/api/job-requests/:id/tasks/:task_type/output",
    {
      config: { role: "reader" },
      schema: {
        summary: "A task's output (latest execution in the latest attempt, or ?execution=)",
        description,
        tags: TAGS,
        params: TaskOutputParams,
        querystring: TaskOutputQuery,
        response: { 200: OutputResponse, ...errorResponses(400, 404) },
      },
    },
    async (request, reply) => {
      const id = Number(request.params.id);
      const taskType = request.params.task_type;
      const job = await engine.getJob(id);
      let execution: TaskExecution | undefined;
      if (request.query.execution !== undefined) {
        execution = job.tasks.find(
          (t) => t.id === request.query.execution && t.taskType === taskType,
        );
        if (!execution)
          throw new NotFoundError(
            "task_execution",
            request.query.execution,
            `it is not an execution of task ${taskType} of job request ${id}`,
          );
      } else {
        const mine = job.tasks.filter((t) => t.taskType === taskType);
        execution = mine.filter((t) => t.jobAttempt === job.attempt).at(-1) ?? mine.at(-1);
        if (!execution) {
          if (!job.definition.tasks.some((t) => t.taskType === taskType)) {
            throw new NotFoundError(
              "task_type",
              taskType,
              `job request ${id} (${job.jobType}) has tasks ${job.definition.tasks.map((t) => t.taskType).join(", ")}`,
            );
          }
          throw new ColonyError(
            "COLONY_TASK_NOT_STARTED",
            `task ${taskType} of job request ${id} has not started (the job is ${job.state}); ask again once it runs`,
            { status: 404 },
          );
        }
      }
      const { execution: _ignored, ...options } = request.query;
      return sendOutput(deps, request, execution, options, reply);
    },
  );

  app.get(
    "/api/task-executions/:execution_id/output",
    {
      config: { role: "reader" },
      schema: {
        summary: "A task execution's output, by its unit id",
        description,
        tags: TAGS,
        params: ExecutionIdParams,
        querystring: OutputQuery,
        response: { 200: OutputResponse, ...errorResponses(400, 404) },
      },
    },
    async (request, reply) => {
      const executionId = request.params.execution_id;
      const execution = isUnitId(executionId)
        ? await store.getTaskExecution(executionId)
        : undefined;
      if (!execution) throw new NotFoundError("task_execution", executionId);
      return sendOutput(deps, request, execution, request.query, reply);
    },
  );
};
