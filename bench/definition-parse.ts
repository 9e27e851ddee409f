/**
 * What colony's definition parser adds to the YAML library it reads with: a job of
 * `tasks` tasks (one fanning out to all the others, a last one joining them: the shape
 * whose cycle check was once quadratic) parsed by parseJobDefinition (YAML, then every
 * field read, checked, every reference and cycle checked) against the `yaml` package's
 * parseDocument with the same line counter on the same text, in alternating rounds.
 * The server parses a submitted definition on its event loop: this is how long that
 * loop stalls for a job of this size.
 */
import { LineCounter, parseDocument } from "yaml";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import type { BenchLine } from "./support.ts";

/** The YAML text of a fan-out and join job of `tasks` tasks (plus the two ends). */
export function fanOutYaml(tasks: number): string {
  const names = Array.from({ length: tasks }, (_, i) => `t${i}`);
  const lines = [
    "job_type: wide",
    "tasks:",
    "- task_type: start",
    "  script: [true]",
    `  on_completed: [${names.join(", ")}]`,
  ];
  for (const name of names) lines.push(`- task_type: ${name}`, '  script: ["true"]');
  lines.push("- task_type: join", `  depends_on: [${names.join(", ")}]`, "  script: [true]");
  return lines.join("\n") + "\n";
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export async function definitionParse(tasks = 20_000, rounds = 5): Promise<BenchLine[]> {
  const text = fanOutYaml(tasks);
  const colony: number[] = [];
  const yaml: number[] = [];
  parseJobDefinition(text); // warm up both
  parseDocument(text, { lineCounter: new LineCounter() });
  for (let r = 0; r < rounds; r++) {
    const sides: Array<[number[], () => unknown]> = [
      [colony, () => parseJobDefinition(text)],
      [yaml, () => parseDocument(text, { lineCounter: new LineCounter() })],
    ];
    if (r % 2 === 1) sides.reverse();
    for (const [times, parse] of sides) {
      const started = performance.now();
      parse();
      times.push(performance.now() - started);
    }
  }
  const c = median(colony);
  const y = median(yaml);
  return [
    {
      name: `definition parse, ${tasks + 2} tasks (${(text.length / 2 ** 20).toFixed(1)} MiB)`,
      value: `${c.toFixed(0)} ms (${((c * 1000) / (tasks + 2)).toFixed(0)} µs a task)`,
      baseline: `yaml parseDocument ${y.toFixed(0)} ms`,
      ratio: c / y,
    },
  ];
}
