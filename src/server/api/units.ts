/**
 * /api/units: every task execution is a unit (SPEC section 1); this lists them in
 * receptor's vocabulary (Pending, Running, Succeeded, Failed, Canceled), newest first.
 */
import { NotFoundError, ValidationError } from "../../core/errors.ts";
import { isUnitId } from "../../core/ids.ts";
import type { RouteModule } from "../app.ts";
import {
  errorResponses,
  UnitIdParams,
  UnitListQuery,
  UnitPageSchema,
  UnitSchema,
} from "../schemas.ts";
import { unitView } from "../views.ts";
import { outputSize } from "./task-output.ts";

const TAGS = ["units"];

export const unitRoutes: RouteModule = (app, deps) => {
  const { store, dataDir } = deps.runtime;

  app.get(
    "/api/units",
    {
      config: { role: "reader" },
      schema: {
        summary: "List units (task executions of every job), newest first",
        tags: TAGS,
        querystring: UnitListQuery,
        response: { 200: UnitPageSchema, ...errorResponses(400) },
      },
    },
    async (request) => {
      const { cursor, limit } = request.query;
      if (cursor !== undefined && !/^[1-9][0-9]{0,15}$/.test(cursor)) {
        throw new ValidationError(
          `querystring.cursor: '${cursor}' is not a cursor this server gave; pass next_cursor from the previous page`,
        );
      }
      const page = await store.listRecentTaskExecutions({
        before: cursor === undefined ? undefined : Number(cursor),
        limit: limit ?? 50,
      });
      return {
        items: page.items.map((t) => unitView(t, outputSize(dataDir, t.id))),
        next_cursor: page.nextCursor === undefined ? null : String(page.nextCursor),
      };
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
    async (request) => {
      const id = request.params.id;
      const execution = isUnitId(id) ? await store.getTaskExecution(id) : undefined;
      if (!execution) throw new NotFoundError("unit", id, "list them with GET /api/units");
      return unitView(execution, outputSize(dataDir, id));
    },
  );
};
