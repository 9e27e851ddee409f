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

export const ALL_ROUTES: RouteModule[] = [
  healthRoutes,
  jobDefinitionRoutes,
  jobRequestRoutes,
  taskOutputRoutes,
  unitRoutes,
  tokenRoutes,
  processJobRoutes,
];
