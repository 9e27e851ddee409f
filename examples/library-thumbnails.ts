// colony as a library: TypeScript functions as tasks of a durable job (docs/library.md).
//
//   node --conditions=colony-source examples/library-thumbnails.ts   (in this repository)
//   node thumbnails.ts                                             (with colony installed)
//
// The job's state lives in the data dir: kill the program half way and start it again,
// and the job continues where it stopped. test/library-example.test.ts runs this file.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startColony } from "colony";

const dataDir = process.env.COLONY_DATA_DIR ?? mkdtempSync(join(tmpdir(), "colony-thumbnails-"));
const colony = await startColony({ dataDir });

// A handler gets its parameters, an AbortSignal (cancel, timeout), progress and log.
colony.register("resize", async (ctx) => {
  if (ctx.attempt === 0) throw new Error("the image service is warming up"); // retried: retry: 1
  ctx.log(`resizing ${String(ctx.params.image)} to ${String(ctx.params.width)}px`);
  for (const percent of [25, 50, 75, 100]) {
    await sleep(5, undefined, { signal: ctx.signal });
    ctx.progress(percent);
  }
  // The return value is the task's context: later tasks read it as {{.thumbnail}} or ctx.params.
  return { thumbnail: `${String(ctx.params.image)}-${String(ctx.params.width)}.jpg` };
});
colony.register("publish", (ctx) => ({
  url: `https://cdn.example/${String(ctx.params.thumbnail)}`,
}));

colony.on("task:failed", (e) =>
  console.log(`task ${e.taskType} try ${e.attempt + 1} failed: ${e.error}`),
);
colony.on("task:progress", (e) => console.log(`task ${e.taskType} ${e.progress}%`));
colony.on("job:completed", (e) => console.log(`job ${e.id} (${e.jobType}) completed`));

const run = await colony.submit(
  {
    job_type: "thumbnails",
    tasks: [
      {
        task_type: "resize",
        method: "FUNCTION",
        function: "resize",
        retry: 1,
        timeout: "30s",
        on_completed: ["publish"],
      },
      { task_type: "publish", method: "FUNCTION", function: "publish" },
    ],
  },
  { params: { image: "cat.png", width: 128 } },
);
const { results } = await run.result();
console.log(`results ${JSON.stringify(results)}`);
await colony.close();
