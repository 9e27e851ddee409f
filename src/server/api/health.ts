/** GET /api/health: liveness and what this server is, without auth. */
import { Type } from "typebox";
import type { RouteModule } from "../app.ts";

const Health = Type.Object({
  status: Type.Literal("ok"),
  node_id: Type.String(),
  store: Type.String(),
  version: Type.String(),
  uptime_seconds: Type.Number(),
});

const started = Date.now();

export const healthRoutes: RouteModule = (app, deps) => {
  app.get(
    "/api/health",
    {
      schema: {
        summary: "Liveness (no auth)",
        tags: ["health"],
        security: [],
        response: { 200: Health },
      },
    },
    async () => ({
      status: "ok" as const,
      node_id: deps.config.nodeId,
      store: deps.runtime.store.kind,
      version: "0.1.0",
      uptime_seconds: Math.round((Date.now() - started) / 1000),
    }),
  );
};
