import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import {
  combinedParams,
  commandArgv,
  execLine,
  loadWorkTypes,
  splitParams,
  WorkTypeError,
} from "./work-types.ts";

describe("work types", () => {
  it("splits params like receptor: quotes, escapes, no expansion", () => {
    assert.deepEqual(splitParams('-c "for i in {1..5}; do echo $i; sleep 1; done"'), [
      "-c",
      "for i in {1..5}; do echo $i; sleep 1; done",
    ]);
    assert.deepEqual(splitParams('-c "while read -r line; do echo ${line^^}; done"'), [
      "-c",
      "while read -r line; do echo ${line^^}; done",
    ]);
    assert.deepEqual(splitParams(`a 'b c' "d \\"e\\"" f\\ g  # comment`), [
      "a",
      "b c",
      'd "e"',
      "f g",
    ]);
    assert.deepEqual(splitParams(""), []);
    assert.deepEqual(splitParams("''"), [""]);
    assert.throws(() => splitParams('"open'), /unclosed double quote/);
    assert.throws(() => splitParams("'open"), /unclosed single quote/);
  });

  it("escapes any character with a backslash inside double quotes, as google/shlex does", () => {
    assert.deepEqual(splitParams('"a\\nb"'), ["anb"]);
  });

  it("runs exactly the words it split (the shell line quotes them again)", () => {
    const [wt] = loadWorkTypes(
      [{ work_type: "t", command: "printf", params: `'[%s]\\n' 'a b' '$HOME' "it's" '*'` }],
      { hasVerificationKey: false },
    ).values();
    const line = execLine(commandArgv(wt!, combinedParams(wt!, "extra")));
    const out = execFileSync("bash", ["-c", line], { encoding: "utf8" });
    assert.equal(out, "[a b]\n[$HOME]\n[it's]\n[*]\n[extra]\n");
  });

  it("validates the configured types", () => {
    const load = (types: Parameters<typeof loadWorkTypes>[0], key = false) =>
      loadWorkTypes(types, { hasVerificationKey: key });
    assert.throws(() => load([{ work_type: "remote", command: "x" }]), /reserved/);
    assert.throws(
      () =>
        load([
          { work_type: "a", command: "x" },
          { work_type: "a", command: "y" },
        ]),
      /defined twice/,
    );
    assert.throws(() => load([{ work_type: "a", command: "x", params: '"' }]), WorkTypeError);
    assert.throws(
      () => load([{ work_type: "a", command: "x", verify_signature: true }]),
      /work_verification.public_key/,
    );
    const ok = load([{ work_type: "a", command: "x", verify_signature: true }], true);
    assert.equal(ok.get("a")?.verifySignature, true);
    assert.equal(ok.get("a")?.allowRuntimeParams, false);
  });
});
