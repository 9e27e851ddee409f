/**
 * Every route group the server serves. Each group is one module; add a line here to
 * register a new one.
 */
import type { RouteModule } from "./app.ts";
import { healthRoutes } from "./api/health.ts";
import { jobDefinitionRoutes } from "./api/job-definitions.ts";
import { jobRequestRoutes } from "./api/job-requests.ts";
import { taskOutputRoutes } from "./api/task-output.ts";
import { tokenRoutes } from "./api/tokens.ts";
import { unitRoutes } from "./api/units.ts";
import { processJobRoutes } from "./compat-jobs/routes.ts";
import { antRoutes } from "../ants/ws-endpoint.ts";
import { eventRoutes } from "./api/events.ts";
import { jobRequestDefinitionRoutes } from "./api/job-request-definition.ts";
import { sessionRoutes } from "./api/session.ts";
import { dashboardRoutes } from "./dashboard/static.ts";
import { metricsRoutes } from "./metrics/metrics-routes.ts";
import { hookRoutes } from "./hook/routes.ts";
import { artifactRoutes } from "./api/artifacts.ts";
import { scheduleRoutes } from "./api/schedules.ts";

export const ALL_ROUTES: RouteModule[] = [
  healthRoutes,
  jobDefinitionRoutes,
  jobRequestRoutes,
  taskOutputRoutes,
  unitRoutes,
  tokenRoutes,
  processJobRoutes,
  antRoutes,
  jobRequestDefinitionRoutes,
  eventRoutes,
  sessionRoutes,
  metricsRoutes,
  hookRoutes,
  artifactRoutes,
  scheduleRoutes,
  dashboardRoutes,
];
