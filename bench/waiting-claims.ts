/**
 * Whether claims stay cheap as requests pile up: no-op FUNCTION jobs of one type with
 * `max_concurrency: 8`, `many` of them submitted at once, against `few` submitted at
 * once, on the embedded store: jobs/s from the first submit to the last completion, and
 * the ratio. Each claim once read every waiting request of a type at its limit (75 jobs/s
 * with 30,000 waiting against 584/s with 3,000); migration 0011 gives each limited type
 * its own range of an index.
 */
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { noopColony } from "./noop-colony.ts";
import type { BenchLine } from "./support.ts";

const LIMITED = `job_type: limited
max_concurrency: 8
tasks:
- task_type: a
  method: FUNCTION
  function: noop
`;

export async function waitingClaims(many = 30_000, few = 3000): Promise<BenchLine[]> {
  const { colony, close } = await noopColony();
  const definition = parseJobDefinition(LIMITED);
  const rate = async (n: number): Promise<number> => {
    const started = performance.now();
    const jobs = await Promise.all(
      Array.from({ length: n }, () => colony.engine.submit({ definition })),
    );
    await Promise.all(jobs.map((j) => colony.engine.waitFor(j.id)));
    return n / ((performance.now() - started) / 1000);
  };
  try {
    await rate(200); // warm up
    const fewRate = await rate(few);
    const manyRate = await rate(many);
    return [
      {
        name: `max_concurrency 8, ${many} waiting`,
        value: `${manyRate.toFixed(0)} jobs/s`,
        baseline: `${few} waiting ${fewRate.toFixed(0)} jobs/s`,
        ratio: manyRate / fewRate,
        target: "≈ 1",
      },
    ];
  } finally {
    await close();
  }
}
