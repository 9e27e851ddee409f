/**
 * The unit manager in-process with the real SHELL executor: retention, runtime-param
 * rules, secrets at rest, and the files a unit leaves.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Executor } from "../core/executor.ts";
import { createShellExecutor } from "../executors/shell/shell-executor.ts";
import { UnitManager } from "./unit-manager.ts";
import { loadWorkTypes } from "./work-types.ts";

let dir: string;
let executor: Executor;
let manager: UnitManager;
const changes: string[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "colony-units-"));
  executor = createShellExecutor({ killGraceMs: 1000 });
  manager = new UnitManager({
    nodeId: "n1",
    dataDir: dir,
    workTypes: loadWorkTypes(
      [
        { work_type: "env", command: "bash", params: '-c "echo ${#SECRET_TOKEN}:$SECRET_TOKEN"' },
        { work_type: "echo", command: "echo", allow_runtime_params: true },
        { work_type: "fixed", command: "echo", params: "fixed" },
      ],
      { hasVerificationKey: false },
    ),
    peers: new Map(),
    executor,
    secretKey: Buffer.alloc(32, 1),
    retentionMs: 1500,
    onChange: (unit, what) => changes.push(`${unit.id} ${what} ${unit.state}`),
  });
  await manager.open();
});

after(async () => {
  await manager.close();
  await executor.close({ killRunning: true });
  rmSync(dir, { recursive: true, force: true });
});

async function run(workType: string, params: Record<string, string> = {}) {
  const { id } = await manager.create({ workType, params }, { trusted: true });
  await manager.receiveStdin(id, undefined);
  await manager.startUnit(id);
  const unit = await manager.waitFinal(id);
  return { id, unit: unit! };
}

describe("unit manager", () => {
  it("gives secret_* params to the command as SECRET_* variables, sealed on disk and absent from views", async () => {
    const { id, unit } = await run("env", { secret_token: "hunter2" });
    assert.equal(readFileSync(join(dir, "units", id, "stdout"), "utf8"), "7:hunter2\n");
    assert.equal(unit.state, 2);
    for (const file of readdirSync(join(dir, "units", id))) {
      if (file === "stdout") continue;
      assert.doesNotMatch(readFileSync(join(dir, "units", id, file), "utf8"), /hunter2/);
    }
    assert.doesNotMatch(JSON.stringify(manager.list()), /hunter2|SecretEnv/);
  });

  it("appends runtime params only where allowed, and refuses other parameters", async () => {
    const { id } = await run("echo", { params: "a 'b c'" });
    assert.equal(readFileSync(join(dir, "units", id, "stdout"), "utf8"), "a b c\n");
    await assert.rejects(
      manager.create({ workType: "fixed", params: { params: "x" } }, { trusted: true }),
      /extra params provided but not allowed/,
    );
    await assert.rejects(
      manager.create({ workType: "fixed", params: { color: "x" } }, { trusted: true }),
      /'color' is neither/,
    );
    await assert.rejects(
      manager.create({ workType: "nope" }, { trusted: true }),
      /no work type 'nope'; this node \(n1\) has env, echo, fixed/,
    );
    const bare = new UnitManager({
      nodeId: "n2",
      dataDir: join(dir, "bare"),
      workTypes: new Map(),
      peers: new Map(),
      executor,
      secretKey: Buffer.alloc(32, 1),
    });
    await bare.open();
    await assert.rejects(
      bare.create({ workType: "echo" }, { trusted: true }),
      /no work type 'echo'; this node \(n2\) has none: add work_types to its colony.yaml/,
    );
    await bare.close();
    await assert.rejects(
      manager.create({ workType: "echo", node: "elsewhere" }, { trusted: true }),
      /unknown node 'elsewhere'/,
    );
  });

  it("tells listeners of state changes and releases finished units after the retention", async () => {
    const { id } = await run("fixed");
    assert.ok(changes.some((c) => c.startsWith(`${id} state 1`)));
    assert.ok(changes.some((c) => c.startsWith(`${id} state 2`)));
    const until = Date.now() + 8000;
    while (existsSync(join(dir, "units", id)) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(existsSync(join(dir, "units", id)), false, "released by the retention sweep");
    assert.ok(changes.includes(`${id} released 2`));
    assert.equal(manager.has(id), false);
  });
});
