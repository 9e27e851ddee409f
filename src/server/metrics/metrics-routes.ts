/**
 * GET /metrics: the Prometheus exposition of server/metrics (needs a reader token, like
 * the rest of the API: see docs/metrics.md for the scrape config), and the hook that
 * times every HTTP request by route pattern.
 */
import { Type } from "typebox";
import type { RouteModule } from "../app.ts";
import { errorResponses } from "../schemas.ts";

export const metricsRoutes: RouteModule = (app, deps) => {
  const metrics = deps.metrics;
  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics.observeHttp(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });

  app.get(
    "/metrics",
    {
      config: { role: "reader" },
      schema: {
        summary: "Prometheus metrics (text format 0.0.4)",
        tags: ["metrics"],
        response: {
          200: {
            description: "The metrics",
            content: { "text/plain": { schema: Type.String() } },
          },
          ...errorResponses(),
        },
      },
    },
    async (_request, reply) =>
      reply
        .header("cache-control", "no-store")
        .type(metrics.contentType)
        .send(await metrics.scrape()),
  );
};
