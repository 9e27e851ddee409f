import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FunctionExecutor } from "./function/function-executor.ts";
import { lazyExecutor } from "./lazy-executor.ts";
import { taskDefinition } from "../core/job-definition.ts";

describe("lazyExecutor (an executor loaded on its first use)", () => {
  const request = (id: string) => ({
    executionId: id,
    method: "FUNCTION" as const,
    task: { ...taskDefinition("t"), method: "FUNCTION" as const, function: "double" },
    env: {},
    variables: { X: { name: "x", value: 21, secret: false } },
    unitDir: `/tmp/colony-lazy-test/${id}`,
  });
  const make = () => {
    let loads = 0;
    const lazy = lazyExecutor(["FUNCTION"], async () => {
      loads++;
      return new FunctionExecutor({ startupGraceMs: 0 }).register("double", (ctx) => ({
        doubled: Number(ctx.params.x) * 2,
      }));
    });
    return { lazy, loads: () => loads };
  };

  it("loads nothing until used, then once, and runs the real executor", async () => {
    const { lazy, loads } = make();
    assert.deepEqual(lazy.methods, ["FUNCTION"]);
    assert.equal(loads(), 0);
    const [a, b] = await Promise.all([
      lazy.run(request("lazy0001")),
      lazy.run(request("lazy0002")),
    ]);
    assert.deepEqual([a.exitCode, a.context], [0, { doubled: 42 }]);
    assert.equal(b.exitCode, 0);
    assert.equal(loads(), 1, "two first uses at once share one load");
    await assert.rejects(lazy.wait("nope0001"), /no execution 'nope0001'/);
    await lazy.close();
  });

  it("closing one that was never used loads nothing", async () => {
    const { lazy, loads } = make();
    await lazy.close();
    lazy.release?.("lazy0003"); // nothing loaded: nothing to tell
    assert.equal(loads(), 0);
  });
});
