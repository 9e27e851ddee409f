/**
 * Wire formats of the process-jobs API (/jobs, SPEC section 8, seed 003). JSON keys are
 * the seed's (camelCase `reasonForExit`), not colony's snake_case: its clients must
 * work unchanged.
 */
import { Type, type Static } from "typebox";
import { PROCESS_JOB_STATUSES, PROCESS_JOB_TARGETS } from "../../core/process-job.ts";

export const ProcessJobSchema = Type.Object(
  {
    id: Type.String({ description: 'Zero-padded sequence number, "0000" first' }),
    command: Type.String(),
    status: Type.Enum([...PROCESS_JOB_STATUSES], { description: "created, started or stopped" }),
    logs: Type.String({
      description:
        "The process's output (stdout and stderr) so far: at most the last 1 MiB; the " +
        "header X-Colony-Logs-Omitted-Bytes says how much came before, and " +
        "GET /jobs/{id}/logs streams all of it",
    }),
    reasonForExit: Type.String({
      description:
        'Empty until stopped; then "timeout", "API", "Service Shutdown", "process finished" ' +
        'or "process finished with error: <err>" (e.g. "exit status 1", "signal: killed")',
    }),
  },
  { description: "A process job as the seed's clients read it" },
);
export type ProcessJobWire = Static<typeof ProcessJobSchema>;

export const CreateProcessJobBody = Type.Object(
  {
    command: Type.String({
      minLength: 1,
      description: "Run as `bash -c <command>` once the job is started",
    }),
    timeout: Type.Optional(
      Type.String({
        description:
          "Go duration (e.g. 90s, 5m) after which a started job is stopped with reason " +
          "`timeout`; default jobs_api.default_timeout (30s). Beyond the seed.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateProcessJobBodyType = Static<typeof CreateProcessJobBody>;

export const UpdateProcessJobBody = Type.Object(
  {
    status: Type.String({
      description: `The status to move to: ${PROCESS_JOB_TARGETS.map((s) => `"${s}"`).join(" or ")}`,
      examples: [...PROCESS_JOB_TARGETS],
    }),
  },
  { additionalProperties: false },
);

export const ProcessJobParams = Type.Object({
  id: Type.String({ description: 'The job id, e.g. "0000"' }),
});

export const ProcessJobLogsQuery = Type.Object(
  {
    follow: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "Keep streaming until the process ends (default); follow=0 answers the output so far",
      }),
    ),
  },
  { additionalProperties: false },
);
