/**
 * /api/schedules: job types with a cron_trigger (docs/schedules.md): list with their
 * next firing, show one, pause, resume. A schedule exists while its definition has a
 * cron_trigger; save the definition to change or remove it.
 */
import { Type, type Static } from "typebox";
import type { ScheduleInfo } from "../../engine/cron-scheduler.ts";
import type { RouteModule } from "../app.ts";
import { errorResponses } from "../schemas.ts";

const TAGS = ["schedules"];
const Timestamp = Type.String({ description: "ISO 8601 time (UTC)" });
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const ScheduleSchema = Type.Object({
  job_type: Type.String(),
  cron_trigger: Type.String({ description: "As written in the definition" }),
  cron: Type.String({ description: "Its 5 or 6 fields" }),
  timezone: Nullable(
    Type.String({ description: "The zone it is evaluated in; null: the machine's" }),
  ),
  paused: Type.Boolean(),
  last_fired_at: Timestamp,
  last_job_request_id: Nullable(Type.Integer()),
  next_fire_at: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp,
});
export type ScheduleView = Static<typeof ScheduleSchema>;

export const ScheduleListSchema = Type.Object({ items: Type.Array(ScheduleSchema) });
export type ScheduleListView = Static<typeof ScheduleListSchema>;

const Params = Type.Object({ job_type: Type.String() });

export function scheduleView(s: ScheduleInfo): ScheduleView {
  return {
    job_type: s.jobType,
    cron_trigger: s.cronTrigger,
    cron: s.cron,
    timezone: s.effectiveTimezone ?? null,
    paused: s.paused,
    last_fired_at: s.lastFiredAt.toISOString(),
    last_job_request_id: s.lastJobRequestId ?? null,
    next_fire_at: s.nextFireAt?.toISOString() ?? null,
    created_at: s.createdAt.toISOString(),
    updated_at: s.updatedAt.toISOString(),
  };
}

export const scheduleRoutes: RouteModule = (app, deps) => {
  const { schedules } = deps.runtime.asyncActions;

  app.get(
    "/api/schedules",
    {
      config: { role: "reader" },
      schema: {
        summary: "List schedules with their next firing",
        tags: TAGS,
        response: { 200: ScheduleListSchema, ...errorResponses() },
      },
    },
    async () => ({ items: (await schedules.list()).map(scheduleView) }),
  );

  app.get(
    "/api/schedules/:job_type",
    {
      config: { role: "reader" },
      schema: {
        summary: "Show a schedule",
        tags: TAGS,
        params: Params,
        response: { 200: ScheduleSchema, ...errorResponses(404) },
      },
    },
    async (request) => scheduleView(await schedules.get(request.params.job_type)),
  );

  for (const action of ["pause", "resume"] as const) {
    app.post(
      `/api/schedules/:job_type/${action}`,
      {
        config: { role: "writer" },
        schema: {
          summary: action === "pause" ? "Pause a schedule (nothing fires)" : "Resume a schedule",
          description:
            action === "resume"
              ? "It continues from now: cron times missed while it was paused do not fire."
              : "Job requests already submitted still run; submitting by hand still works.",
          tags: TAGS,
          params: Params,
          response: { 200: ScheduleSchema, ...errorResponses(404) },
        },
      },
      async (request) =>
        scheduleView(await schedules.setPaused(request.params.job_type, action === "pause")),
    );
  }
};
