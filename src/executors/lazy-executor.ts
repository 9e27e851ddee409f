/**
 * An executor whose module is loaded on its first use. `colony run` registers MESSAGING,
 * DOCKER and KUBERNETES this way: their modules (the wire formats' TypeBox schemas, the
 * Redis client, the container APIs) took ~0.45 s of a one-task `colony run`'s ~1.1 s to
 * import, and a run of SHELL tasks never needs them. The server loads them at start (its
 * container reapers run whether or not a task uses them).
 */
import type { Executor } from "../core/executor.ts";
import type { Method } from "../core/job-definition.ts";

/** `adopts`: what the loaded executor will say (Executor.adopts), known before it loads. */
export function lazyExecutor(
  methods: readonly Method[],
  load: () => Promise<Executor>,
  options: { adopts?: boolean } = {},
): Executor {
  let loading: Promise<Executor> | undefined;
  let loaded: Executor | undefined;
  const get = () =>
    (loading ??= load().then((executor) => {
      loaded = executor;
      return executor;
    }));
  return {
    methods,
    ...(options.adopts ? { adopts: true } : {}),
    isInstalled: async (signal) => (await get()).isInstalled(signal),
    start: async (request) => (await get()).start(request),
    run: async (request) => (await get()).run(request),
    wait: async (id) => (await get()).wait(id),
    cancel: async (id) => (await get()).cancel(id),
    logStream: async (request) => (await get()).logStream(request),
    attach: async (request, handle) => {
      const executor = await get();
      return executor.attach ? executor.attach(request, handle) : false;
    },
    release: (id) => loaded?.release?.(id),
    close: async (options) => {
      if (loading) await (await loading).close(options);
    },
  };
}
