/**
 * An embedded colony in a temp data dir with a registered no-op function `noop`: this
 * tree's, or (bench/ab.ts) another revision's, whose `startColony` is passed in.
 */
import type { Colony, startColony as StartColony } from "../src/index.ts";
import { tempDataDir } from "./support.ts";

export async function noopColony(
  start?: typeof StartColony,
): Promise<{ colony: Colony; close(): Promise<void> }> {
  // Loaded only when no revision's is given: bench/ab.ts keeps this tree's code out.
  const begin = start ?? (await import("../src/index.ts")).startColony;
  const dir = tempDataDir();
  const colony = await begin({
    dataDir: dir.path,
    maxParallelTasks: 16,
    schedules: false,
    functions: { noop: () => undefined },
    log: () => undefined,
  });
  return {
    colony,
    async close() {
      await colony.close({ graceMs: 0 });
      dir.remove();
    },
  };
}
