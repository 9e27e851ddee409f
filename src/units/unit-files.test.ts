import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  allocateUnitDir,
  formatStatus,
  listUnitIds,
  parseStatus,
  readStatus,
  removeStaleTempFiles,
  writeStatus,
} from "./unit-files.ts";

const dir = mkdtempSync(join(tmpdir(), "colony-unitfiles-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("unit files", () => {
  it("writes the status as one JSON line in receptor's field order", () => {
    const text = formatStatus({
      State: 2,
      Detail: "exit status 0",
      StdoutSize: 21,
      WorkType: "echoint",
      ExtraData: null,
    });
    assert.equal(
      text,
      '{"State":2,"Detail":"exit status 0","StdoutSize":21,"WorkType":"echoint","ExtraData":null}\n',
    );
    assert.deepEqual(parseStatus(text).State, 2);
    assert.throws(() => parseStatus('{"State":9,"WorkType":"x"}'), /State must be 0 to 4/);
    assert.throws(() => parseStatus("[]"), /not a JSON object/);
  });

  it("a reader in another process never sees a torn status while this one rewrites it", async () => {
    const path = join(dir, "status");
    await writeStatus(path, {
      State: 1,
      Detail: "x",
      StdoutSize: 0,
      WorkType: "t",
      ExtraData: null,
    });
    // Another process reads as fast as it can while we rewrite with large, varying details.
    const reader = join(dir, "reader.ts");
    writeFileSync(
      reader,
      `import { readFileSync, existsSync } from "node:fs";
const [path, stop] = process.argv.slice(2);
let reads = 0, torn = 0;
while (!existsSync(stop)) {
  const text = readFileSync(path, "utf8");
  try { const s = JSON.parse(text); if (s.Detail.length !== s.StdoutSize) torn++; } catch { torn++; }
  reads++;
}
process.stdout.write(JSON.stringify({ reads, torn }));`,
    );
    const stop = join(dir, "stop");
    const child = spawn(process.execPath, [reader, path, stop], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    const done = new Promise((resolve) => child.on("close", resolve));
    for (let i = 0; i < 300; i++) {
      const size = 1 + ((i * 7919) % 200_000);
      await writeStatus(path, {
        State: 1,
        Detail: "d".repeat(size),
        StdoutSize: size,
        WorkType: "t",
        ExtraData: null,
      });
    }
    writeFileSync(stop, "");
    await done;
    const { reads, torn } = JSON.parse(out) as { reads: number; torn: number };
    assert.ok(reads > 50, `the reader read ${reads} times`);
    assert.equal(torn, 0);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.endsWith(".tmp")),
      [],
      "no temp files left",
    );
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it("allocates 0700 unit dirs with 8-character ids and lists only those with a status", async () => {
    const data = join(dir, "data");
    const { id, paths } = await allocateUnitDir(data, () => "AbCd1234");
    assert.equal(id, "AbCd1234");
    assert.equal(statSync(paths.dir).mode & 0o777, 0o700);
    let n = 0;
    const again = await allocateUnitDir(data, () => (n++ === 0 ? "AbCd1234" : "Zz999999"));
    assert.equal(again.id, "Zz999999", "a taken id is drawn again");
    await writeStatus(paths.status, {
      State: 0,
      Detail: "",
      StdoutSize: 0,
      WorkType: "t",
      ExtraData: null,
    });
    assert.deepEqual(await listUnitIds(data), ["AbCd1234"]);
    writeFileSync(`${paths.status}.123.4.tmp`, "{");
    await removeStaleTempFiles(paths.dir);
    assert.deepEqual(readdirSync(paths.dir), ["status"]);
    assert.equal((await readStatus(paths.status))?.WorkType, "t");
    assert.equal(await readStatus(join(data, "nope")), undefined);
  });
});
