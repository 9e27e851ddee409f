/**
 * The `colony` package: `import { startColony, createClient } from "colony"`.
 * Only re-exports (CONVENTIONS): the library (src/library), the typed REST client
 * (src/client), and the model and helpers a program using them needs.
 */
export {
  startColony,
  JobFailedError,
  type Colony,
  type ColonyLibraryEvents,
  type DefinitionInput,
  type JobResult,
  type Run,
  type StartColonyOptions,
  type SubmitInput,
  type SubmitOptions,
} from "./library/colony.ts";
export type { FunctionContext, FunctionHandler } from "./executors/function/function-executor.ts";
export * from "./client/client.ts";
export * from "./worker/index.ts";
export { hookHeaders, hookSignature } from "./hook/hook-auth.ts";
export { JOB_ENV_NAMES } from "./hook/job-env.ts";
export { ColonyError } from "./core/errors.ts";
export { STATES, type State } from "./core/states.ts";
export { HOOK_STATUSES, type HookStatus } from "./core/hook-report.ts";
export { parseJobDefinition } from "./core/definition-parser.ts";
export type { JobDefinition, TaskDefinition, Method } from "./core/job-definition.ts";
export type { JobRequest, TaskExecution } from "./core/job-request.ts";
