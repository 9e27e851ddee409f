/**
 * /api/units: every unit of this node, one model (src/units/unit-model.ts): work units
 * (a work type run here or on a peer) and task executions of jobs, in receptor's states
 * (Pending, Running, Succeeded, Failed, Canceled), newest first.
 *
 * It is also how nodes send each other work: a peer's remote unit submits with
 * `POST /api/units` (the payload as an application/octet-stream body, the rest in the
 * query string; or JSON with `stdin`), follows `GET /api/units/{id}/stdout?follow=true`
 * from its own size, and propagates cancel and release. Requests about units of a work
 * type with `verify_signature` carry a signed-work token in `X-Colony-Work-Signature`.
 */
import type { Readable } from "node:stream";
import type { FastifyReply } from "fastify";
import { ColonyError, ValidationError } from "../../core/errors.ts";
import { isUnitId } from "../../core/ids.ts";
import { UnknownUnitError, type UnitManager } from "../../units/unit-manager.ts";
import { taskUnit, type UnitSnapshot } from "../../units/unit-model.ts";
import { stateName } from "../../units/unit-files.ts";
import { SIGNATURE_HEADER } from "../../units/work-signing.ts";
import type { App, RouteModule, ServerDeps } from "../app.ts";
import {
  errorResponses,
  UnitActionResponse,
  UnitIdParams,
  UnitListQuery,
  UnitPageSchema,
  UnitReleaseQuery,
  UnitSchema,
  UnitStdoutQuery,
  UnitSubmitBody,
  UnitSubmitQuery,
  UnitSubmitResponse,
  WorkTypeListSchema,
  type UnitSubmitBodyView,
  type UnitView,
} from "../schemas.ts";
import { outputSize } from "./task-output.ts";

const TAGS = ["units"];

export function unitView(u: UnitSnapshot): UnitView {
  return {
    id: u.id,
    kind: u.kind,
    state: stateName(u.state),
    state_code: u.state,
    detail: u.detail,
    work_type: u.workType,
    node: u.node,
    stdout_size: u.stdoutSize,
    extra_data: u.extraData ?? null,
    created_at: u.createdAt?.toISOString() ?? null,
    updated_at: u.updatedAt?.toISOString() ?? null,
    job_request_id: u.jobRequestId ?? null,
    task_type: u.taskType ?? null,
  };
}

function manager(deps: ServerDeps): UnitManager {
  if (!deps.units) {
    throw new ColonyError("COLONY_UNITS_DISABLED", "work units are not enabled on this server", {
      status: 503,
    });
  }
  return deps.units;
}

function signatureOf(headers: Record<string, unknown>): string | undefined {
  const value = headers[SIGNATURE_HEADER];
  return typeof value === "string" && value !== "" ? value : undefined;
}

// -- cursor paging over two sources ------------------------------------------------------
// A cursor is `<task part>.<work part>`: the task part is the store's cursor (a number),
// empty for "from the newest" or `-` for "no more"; the work part is `<ms>_<id>` of the
// last work unit shown, empty or `-` likewise.

interface Cursor {
  task: number | "" | "-";
  work: { ms: number; id: string } | "" | "-";
}

function parseCursor(text: string | undefined): Cursor {
  if (text === undefined) return { task: "", work: "" };
  const m = /^(|-|[1-9][0-9]{0,15})\.(|-|(\d{1,15})_([A-Za-z0-9]{8}))$/.exec(text);
  if (!m) {
    throw new ValidationError(
      `querystring.cursor: '${text}' is not a cursor this server gave; pass next_cursor from the previous page`,
    );
  }
  const task = m[1] === "" || m[1] === "-" ? (m[1] as "" | "-") : Number(m[1]);
  const work =
    m[2] === "" || m[2] === "-" ? (m[2] as "" | "-") : { ms: Number(m[3]), id: m[4] as string };
  return { task, work };
}

function newerFirst(a: UnitSnapshot, b: UnitSnapshot): number {
  const d = (b.createdAt?.getTime() ?? 0) - (a.createdAt?.getTime() ?? 0);
  return d !== 0 ? d : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

async function listPage(
  deps: ServerDeps,
  query: { limit?: number; cursor?: string; kind?: "work" | "task" },
): Promise<{ items: UnitSnapshot[]; next: string | null }> {
  const limit = query.limit ?? 50;
  const cursor = parseCursor(query.cursor);
  const { store, dataDir } = deps.runtime;
  // Work units after the cursor position (same order as newerFirst).
  let works: UnitSnapshot[] = [];
  if (query.kind !== "task" && cursor.work !== "-" && deps.units) {
    const after = cursor.work;
    works = deps.units
      .list()
      .filter((u) =>
        after === ""
          ? true
          : newerFirst(u, { ...u, id: after.id, createdAt: new Date(after.ms) }) > 0,
      )
      .slice(0, limit);
  }
  let tasks: UnitSnapshot[] = [];
  let taskPageCursor: number | undefined;
  if (query.kind !== "work" && cursor.task !== "-") {
    const page = await store.listRecentTaskExecutions({
      before: cursor.task === "" ? undefined : cursor.task,
      limit,
    });
    tasks = page.items.map((t) => taskUnit(t, outputSize(dataDir, t.id), deps.config.nodeId));
    taskPageCursor = page.nextCursor;
  }
  const merged = [...works, ...tasks].sort(newerFirst).slice(0, limit);
  const takenTasks = merged.filter((u) => u.kind === "task").length;
  const takenWorks = merged.length - takenTasks;
  // Where each source continues.
  let task: Cursor["task"] = cursor.task;
  if (query.kind === "work") task = "-";
  else if (cursor.task !== "-" && takenTasks > 0) {
    if (takenTasks === tasks.length) task = taskPageCursor ?? "-";
    else {
      const again = await store.listRecentTaskExecutions({
        before: cursor.task === "" ? undefined : cursor.task,
        limit: takenTasks,
      });
      task = again.nextCursor ?? "-";
    }
  } else if (cursor.task !== "-" && tasks.length === 0) task = "-";
  let work: Cursor["work"] = cursor.work;
  if (query.kind === "task" || !deps.units) work = "-";
  else if (cursor.work !== "-" && takenWorks > 0) {
    const last = merged.filter((u) => u.kind === "work").at(-1)!;
    const remaining = deps.units.list().filter((u) => newerFirst(u, last) > 0);
    work = remaining.length === 0 ? "-" : { ms: last.createdAt?.getTime() ?? 0, id: last.id };
  } else if (cursor.work !== "-" && works.length === 0) work = "-";
  const next =
    task === "-" && work === "-"
      ? null
      : `${task}.${typeof work === "string" ? work : `${work.ms}_${work.id}`}`;
  return { items: merged, next };
}

// -- routes ------------------------------------------------------------------------------

function sendStream(reply: FastifyReply, id: string, stream: Readable, follow: boolean) {
  void reply
    .type("text/plain; charset=utf-8")
    .header("cache-control", "no-store")
    .header("x-content-type-options", "nosniff")
    .header("x-colony-unit", id);
  if (follow) void reply.header("x-accel-buffering", "no");
  return reply.send(stream);
}

async function submit(
  deps: ServerDeps,
  input: UnitSubmitBodyView & { paramsJson?: string },
  signature: string | undefined,
  stdin: AsyncIterable<Buffer> | Buffer | undefined,
  reply: FastifyReply,
) {
  const units = manager(deps);
  let params = input.params ?? {};
  if (input.paramsJson !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(input.paramsJson);
    } catch {
      throw new ValidationError("querystring.params: not JSON; pass a JSON object of strings");
    }
    if (
      typeof parsed !== "object" ||
      parsed === null ||
      Array.isArray(parsed) ||
      Object.values(parsed).some((v) => typeof v !== "string")
    ) {
      throw new ValidationError("querystring.params: pass a JSON object whose values are strings");
    }
    params = parsed as Record<string, string>;
  }
  const { id, duplicate } = await units.create(
    {
      workType: input.work_type,
      ...(input.node === undefined ? {} : { node: input.node }),
      params,
      ...(input.ttl === undefined ? {} : { ttl: input.ttl }),
      signWork: input.sign_work ?? false,
      ...(signature === undefined ? {} : { signature }),
      ...(input.origin === undefined ? {} : { origin: input.origin }),
    },
    { trusted: false },
  );
  if (duplicate) {
    // A retry of a submission we already have (its first answer was lost).
    if (stdin && !Buffer.isBuffer(stdin)) for await (const _ of stdin) void _;
    return reply.status(200).send({ ...unitView(await units.find(id)), result: "Job Started" });
  }
  await units.receiveStdin(id, stdin);
  const result = await units.startUnit(id);
  return reply.status(201).send({ ...unitView(await units.find(id)), result });
}

function registerUnitRoutes(app: App, deps: ServerDeps): void {
  // Payloads stream straight into the unit's stdin file (no size limit but the disk's).
  app.addContentTypeParser("application/octet-stream", (_request, payload, done) =>
    done(null, payload),
  );

  app.get(
    "/api/units",
    {
      config: { role: "reader" },
      schema: {
        summary: "List units (work units and task executions), newest first",
        tags: TAGS,
        querystring: UnitListQuery,
        response: { 200: UnitPageSchema, ...errorResponses(400) },
      },
    },
    async (request) => {
      const page = await listPage(deps, request.query);
      return { items: page.items.map(unitView), next_cursor: page.next };
    },
  );

  app.post(
    "/api/units",
    {
      config: { role: "writer" },
      schema: {
        summary: "Submit work: a unit of a work type, here or on a peer (`node`)",
        description:
          "JSON body `{work_type, params?, stdin?, node?, ttl?, sign_work?, origin?}`, or the " +
          "payload as an application/octet-stream body with the same fields in the query " +
          "string (`params` as JSON). Work types with verify_signature need a signed-work " +
          `token in ${SIGNATURE_HEADER}. 201 with the unit and 'Job Started' (or 'Job ` +
          "Submitted' while a peer is unreachable); 200 for a repeated `origin`.",
        tags: TAGS,
        querystring: UnitSubmitQuery,
        body: {
          content: {
            "application/json": { schema: UnitSubmitBody },
            "application/octet-stream": { schema: {} },
          },
        },
        response: {
          200: UnitSubmitResponse,
          201: UnitSubmitResponse,
          ...errorResponses(400, 404, 409),
        },
      } as never,
    },
    async (request, reply) => {
      const query = request.query as Record<string, unknown>;
      const signature = signatureOf(request.headers);
      const body = request.body as unknown;
      if (body !== null && typeof body === "object" && !isStream(body)) {
        const json = body as UnitSubmitBodyView;
        return submit(
          deps,
          json,
          signature,
          json.stdin === undefined ? undefined : Buffer.from(json.stdin, "utf8"),
          reply,
        );
      }
      if (typeof query.work_type !== "string") {
        throw new ValidationError(
          "querystring.work_type: required (or send a JSON body with work_type)",
        );
      }
      const fields: UnitSubmitBodyView & { paramsJson?: string } = {
        work_type: query.work_type,
        ...(typeof query.node === "string" ? { node: query.node } : {}),
        ...(typeof query.ttl === "string" ? { ttl: query.ttl } : {}),
        ...(typeof query.sign_work === "boolean" ? { sign_work: query.sign_work } : {}),
        ...(typeof query.origin === "string" ? { origin: query.origin } : {}),
        ...(typeof query.params === "string" ? { paramsJson: query.params } : {}),
      };
      return submit(deps, fields, signature, isStream(body) ? body : undefined, reply);
    },
  );

  app.get(
    "/api/units/:id",
    {
      config: { role: "reader" },
      schema: {
        summary: "Show one unit",
        tags: TAGS,
        params: UnitIdParams,
        response: { 200: UnitSchema, ...errorResponses(404) },
      },
    },
    async (request) => unitView(await findUnit(deps, request.params.id)),
  );

  app.get(
    "/api/units/:id/stdout",
    {
      config: { role: "reader" },
      schema: {
        summary: "A unit's output from a byte offset, optionally following until it ends",
        description:
          "text/plain bytes (task output has secrets masked). `follow=true` keeps the " +
          "response open until the unit ends, like `work results`.",
        tags: TAGS,
        params: UnitIdParams,
        querystring: UnitStdoutQuery,
        response: {
          200: {
            description: "The output bytes",
            content: { "text/plain": { schema: { type: "string" } } },
          },
          ...errorResponses(403, 404),
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const unit = await findUnit(deps, id);
      const units = manager(deps);
      if (unit.kind === "work") units.checkSignature(id, signatureOf(request.headers), false);
      const follow = request.query.follow ?? false;
      const stream = await units.results(id, { offset: request.query.offset ?? 0, follow });
      return sendStream(reply, id, stream, follow);
    },
  );

  for (const action of ["cancel", "release"] as const) {
    app.post(
      `/api/units/:id/${action}`,
      {
        config: { role: "writer" },
        schema: {
          summary:
            action === "cancel"
              ? "Cancel a work unit (stops its process, or its remote unit)"
              : "Release a work unit: cancel it and delete its files (here and on the peer)",
          description:
            action === "cancel"
              ? "'cancel pending' while the peer of a remote unit is unreachable (retried)."
              : "'release pending' while the peer of a remote unit is unreachable (retried; " +
                "the files stay until then); `force=true` deletes here after one attempt.",
          tags: TAGS,
          params: UnitIdParams,
          ...(action === "release" ? { querystring: UnitReleaseQuery } : {}),
          response: { 200: UnitActionResponse, ...errorResponses(403, 404, 409) },
        },
      },
      async (request) => {
        const id = request.params.id;
        const units = manager(deps);
        if (!units.has(id)) await findUnit(deps, id); // unknown or a task: says which
        units.checkSignature(id, signatureOf(request.headers), false);
        const force = (request.query as { force?: boolean }).force ?? false;
        const result =
          action === "cancel" ? await units.cancel(id) : await units.release(id, force);
        return { unit_id: id, result };
      },
    );
  }

  app.get(
    "/api/work-types",
    {
      config: { role: "reader" },
      schema: {
        summary: "The work types this node runs, and the peers it can send work to",
        tags: TAGS,
        response: { 200: WorkTypeListSchema },
      },
    },
    async () => {
      const units = manager(deps);
      return {
        node_id: deps.config.nodeId,
        items: [...units.workTypes.values()].map((w) => ({
          work_type: w.name,
          command: w.command,
          params: w.params,
          allow_runtime_params: w.allowRuntimeParams,
          verify_signature: w.verifySignature,
          description: w.description ?? null,
        })),
        peers: [...units.peers.keys()],
      };
    },
  );
}

async function findUnit(deps: ServerDeps, id: string): Promise<UnitSnapshot> {
  if (deps.units) return deps.units.find(id);
  const t = isUnitId(id) ? await deps.runtime.store.getTaskExecution(id) : undefined;
  if (!t) throw new UnknownUnitError(id);
  return taskUnit(t, outputSize(deps.runtime.dataDir, id), deps.config.nodeId);
}

function isStream(value: unknown): value is Readable & AsyncIterable<Buffer> {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { pipe?: unknown }).pipe === "function" &&
    Symbol.asyncIterator in value
  );
}

export const unitRoutes: RouteModule = async (app, deps) => {
  // Encapsulated: the octet-stream parser applies to these routes only.
  await app.register(async (child) => registerUnitRoutes(child as App, deps));
};
