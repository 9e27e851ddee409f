/**
 * The four variables every process colony starts gets (SPEC section 9, seed 004):
 *
 *   JOB_ID            the execution's unit id (8 letters or digits): X-Job-Id
 *   JOB_SECRET_KEY    a fresh random key for this execution only (64 hex digits)
 *   JOB_HOOK          `<server base URL>/async`, absolute, reachable from the process
 *   JOB_ORCHESTRATOR  the node id of the colony that runs it
 *
 * Where they come from, for each kind of process:
 * - SHELL tasks: the engine's `extraEnv` (JobHook.taskEnv) adds them to the request's
 *   `env`, which the shell executor passes to the process.
 * - DOCKER and KUBERNETES tasks go through the same `extraEnv`: their executors only
 *   have to put `request.env` into the container's environment (every variable, as
 *   they do for the task's `environment`). JOB_HOOK must then be reachable from inside
 *   the container or pod: set `base_url` in colony.yaml to an address they can reach
 *   (not 127.0.0.1).
 * - `/jobs` processes (compat-jobs): ProcessJobService asks JobHook.processEnv when it
 *   builds the request and calls JobHook.release when the process ends.
 * - Work units: the unit service calls `hook.processEnv(unitId, unitDir, "unit")` for
 *   the process it starts and `hook.release(unitId)` when the unit ends.
 *
 * Without a server (`colony run`, the library without `hook`) there is no hook URL and
 * no variables are added.
 */

export const JOB_ENV_NAMES = ["JOB_ID", "JOB_SECRET_KEY", "JOB_HOOK", "JOB_ORCHESTRATOR"] as const;

export function jobHookEnv(input: {
  jobId: string;
  key: string;
  hookUrl: string;
  orchestrator: string;
}): Record<(typeof JOB_ENV_NAMES)[number], string> {
  return {
    JOB_ID: input.jobId,
    JOB_SECRET_KEY: input.key,
    JOB_HOOK: input.hookUrl,
    JOB_ORCHESTRATOR: input.orchestrator,
  };
}
