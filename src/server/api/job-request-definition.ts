/**
 * GET /api/job-requests/{id}/definition: the definition a request runs (its snapshot,
 * which may differ from the saved type's current version, or was given inline), secrets
 * masked. The dashboard draws the job's DAG from it.
 */
import type { RouteModule } from "../app.ts";
import { errorResponses, JobDefinitionSchema, JobRequestIdParams } from "../schemas.ts";
import { definitionView } from "../views.ts";

export const jobRequestDefinitionRoutes: RouteModule = (app, deps) => {
  const { engine } = deps.runtime;
  app.get(
    "/api/job-requests/:id/definition",
    {
      config: { role: "reader" },
      schema: {
        summary: "The definition a job request runs (secret values masked)",
        tags: ["job requests"],
        params: JobRequestIdParams,
        response: { 200: JobDefinitionSchema, ...errorResponses(400, 404) },
      },
    },
    async (request) => {
      const job = await engine.getJob(Number(request.params.id));
      return definitionView(job.definition);
    },
  );
};
