/**
 * /api/job-definitions: save (YAML or JSON), list, show, delete, pause and resume job
 * types. A definition is parsed and checked in full (unknown keys, cycles, unknown
 * task references) before anything is stored; a refusal gives the line and column.
 */
import { Type } from "typebox";
import { parseJobDefinitionOffLoop as parse } from "../../core/definition-offload.ts";
import { NotFoundError, ValidationError } from "../../core/errors.ts";
import type { JobDefinition } from "../../core/job-definition.ts";
import type { RouteModule } from "../app.ts";
import {
  DefinitionGetQuery,
  DefinitionJsonBody,
  DefinitionListSchema,
  errorResponses,
  JobTypeParams,
  StoredDefinitionSchema,
} from "../schemas.ts";
import { redactSource, storedDefinitionView } from "../views.ts";

const TAGS = ["job definitions"];
const YAML_TYPES = ["application/yaml", "application/x-yaml", "text/yaml", "text/plain"];

/**
 * A definition from a request body: YAML text (a YAML content type), `{yaml: "..."}`,
 * or the definition object itself (JSON). Returns it with the text to keep as source.
 */
export async function definitionFromBody(
  body: unknown,
): Promise<{ definition: JobDefinition; source: string }> {
  // A large one is parsed off the event loop (definition-offload.ts).
  if (typeof body === "string") return { definition: await parse(body), source: body };
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ValidationError(
      "a definition must be YAML text, a JSON object with its YAML keys, or {yaml: '...'}",
    );
  }
  const keys = Object.keys(body);
  const yaml = (body as { yaml?: unknown }).yaml;
  if (keys.length === 1 && keys[0] === "yaml") {
    if (typeof yaml !== "string") throw new ValidationError("body.yaml: must be the YAML text");
    return { definition: await parse(yaml, { format: "yaml" }), source: yaml };
  }
  // Indented, so a line and column in an error point somewhere a reader can find.
  const text = JSON.stringify(body, null, 2);
  return { definition: await parse(text, { format: "json" }), source: text };
}

export const jobDefinitionRoutes: RouteModule = (app, deps) => {
  const { engine, store } = deps.runtime;

  app.post(
    "/api/job-definitions",
    {
      config: { role: "writer" },
      schema: {
        summary: "Save a job definition (new type, or a new version of an existing one)",
        description:
          "The body is YAML (Content-Type application/yaml, text/yaml or text/plain), " +
          "the definition as JSON, or {yaml: '...'}. The whole definition is checked first; " +
          "a refusal is 400 COLONY_INVALID_DEFINITION with the line and column in the message " +
          "and in error.details.",
        tags: TAGS,
        body: {
          content: {
            "application/json": { schema: DefinitionJsonBody },
            ...Object.fromEntries(
              YAML_TYPES.map((t) => [t, { schema: Type.String({ description: "YAML text" }) }]),
            ),
          },
        },
        response: { 201: StoredDefinitionSchema, ...errorResponses(400, 413, 415) },
      },
    },
    async (request, reply) => {
      const { definition, source } = await definitionFromBody(request.body);
      const stored = await engine.saveDefinition(definition, redactSource(source, definition));
      return reply
        .status(201)
        .header("location", `/api/job-definitions/${encodeURIComponent(stored.jobType)}`)
        .send(storedDefinitionView(stored));
    },
  );

  app.get(
    "/api/job-definitions",
    {
      config: { role: "reader" },
      schema: {
        summary: "List saved job definitions, by job type",
        tags: TAGS,
        response: { 200: DefinitionListSchema, ...errorResponses() },
      },
    },
    async () => ({ items: (await store.listDefinitions()).map(storedDefinitionView) }),
  );

  app.get(
    "/api/job-definitions/:job_type",
    {
      config: { role: "reader" },
      schema: {
        summary: "Show one job definition (?format=yaml: its source text)",
        tags: TAGS,
        params: JobTypeParams,
        querystring: DefinitionGetQuery,
        response: {
          200: {
            description: "The definition (JSON), or its source text with ?format=yaml",
            content: {
              "application/json": { schema: StoredDefinitionSchema },
              "application/yaml": { schema: Type.String() },
            },
          },
          ...errorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      const stored = await store.getDefinition(request.params.job_type);
      if (!stored) throw unknownType(request.params.job_type);
      if (request.query.format === "yaml") {
        return reply
          .type("application/yaml; charset=utf-8")
          .header("x-colony-version", String(stored.version))
          .send(stored.source.endsWith("\n") ? stored.source : `${stored.source}\n`);
      }
      return reply.type("application/json").send(storedDefinitionView(stored));
    },
  );

  app.delete(
    "/api/job-definitions/:job_type",
    {
      config: { role: "admin" },
      schema: {
        summary: "Delete a job definition (requests already submitted keep their copy)",
        tags: TAGS,
        params: JobTypeParams,
        response: {
          204: Type.Null({ description: "Deleted" }),
          ...errorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      if (!(await store.deleteDefinition(request.params.job_type)))
        throw unknownType(request.params.job_type);
      return reply.status(204).send(null);
    },
  );

  for (const action of ["pause", "resume"] as const) {
    app.post(
      `/api/job-definitions/:job_type/${action}`,
      {
        config: { role: "writer" },
        schema: {
          summary:
            action === "pause"
              ? "Pause a job type: new submissions are refused with 409 until resumed"
              : "Resume a paused job type",
          tags: TAGS,
          params: JobTypeParams,
          response: { 200: StoredDefinitionSchema, ...errorResponses(400, 404) },
        },
      },
      async (request) => {
        const stored = await store.setDefinitionPaused(request.params.job_type, action === "pause");
        if (!stored) throw unknownType(request.params.job_type);
        return storedDefinitionView(stored);
      },
    );
  }
};

function unknownType(jobType: string): NotFoundError {
  return new NotFoundError(
    "job_type",
    jobType,
    "list the saved ones with GET /api/job-definitions (colony definitions list)",
  );
}
