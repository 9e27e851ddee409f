/** An embedded colony in a temp data dir with a registered no-op function `noop`. */
import { startColony, type Colony } from "../src/index.ts";
import { tempDataDir } from "./support.ts";

export async function noopColony(): Promise<{ colony: Colony; close(): Promise<void> }> {
  const dir = tempDataDir();
  const colony = await startColony({
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
