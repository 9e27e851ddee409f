import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseJobDefinition } from "./definition-parser.ts";
import { OFF_LOOP_MIN_CHARS, parseJobDefinitionOffLoop } from "./definition-offload.ts";
import { DefinitionError } from "./errors.ts";

/** A fan-out and join job of `n` middle tasks, with a task option or two. */
function wideYaml(n: number): string {
  const names = Array.from({ length: n }, (_, i) => `t${i}`);
  let text = `job_type: wide\ntasks:\n- task_type: start\n  script: [true]\n  on_completed: [${names.join(", ")}]\n`;
  for (const name of names) {
    text += `- task_type: ${name}\n  script: ["echo {{.Region}} ${name}"]\n  timeout: 5s\n  retry: 1\n`;
  }
  return text + `- task_type: join\n  depends_on: [${names.join(", ")}]\n  script: [true]\n`;
}

describe("definitions parsed off the event loop", () => {
  it("gives what parseJobDefinition gives, with the loop free meanwhile", async () => {
    const text = wideYaml(5000);
    assert.ok(text.length >= OFF_LOOP_MIN_CHARS);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const parsed = await parseJobDefinitionOffLoop(text);
      assert.deepEqual(parsed, parseJobDefinition(text));
      assert.ok(ticks > 0, "timers ran on the event loop while the worker parsed");
    } finally {
      clearInterval(timer);
    }
  });

  it("refuses a large definition with the DefinitionError parseJobDefinition gives", async () => {
    const text = wideYaml(2000).replace(
      "- task_type: t1500\n",
      "- task_type: t1500\n  scrpt: [x]\n",
    );
    assert.ok(text.length >= OFF_LOOP_MIN_CHARS);
    let inPlace: DefinitionError | undefined;
    try {
      parseJobDefinition(text);
    } catch (error) {
      inPlace = error as DefinitionError;
    }
    assert.ok(inPlace instanceof DefinitionError, "the text is invalid");
    await assert.rejects(parseJobDefinitionOffLoop(text), (error: unknown) => {
      assert.ok(error instanceof DefinitionError);
      assert.equal(error.message, inPlace.message);
      assert.match(error.message, /did you mean 'script'/);
      assert.deepEqual(error.details, inPlace.details);
      assert.equal(error.code, "COLONY_INVALID_DEFINITION");
      assert.equal(error.status, 400);
      return true;
    });
  });

  it("parses many at once, each answered with its own", async () => {
    const texts = [
      wideYaml(600),
      wideYaml(700).replace("job_type: wide", "job_type: other"),
      "job_type: small\ntasks:\n- task_type: a\n",
    ];
    const parsed = await Promise.all(texts.map((t) => parseJobDefinitionOffLoop(t)));
    assert.deepEqual(
      parsed.map((d) => [d.jobType, d.tasks.length]),
      [
        ["wide", 602],
        ["other", 702],
        ["small", 1],
      ],
    );
  });
});
