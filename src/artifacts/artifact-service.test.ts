import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { createSqliteStore } from "../store/sqlite-store.ts";
import type { Store } from "../store/store.ts";
import { ArtifactService } from "./artifact-service.ts";
import { BlobStore, seedHashes } from "./blob-store.ts";

describe("artifact service", () => {
  const dir = mkdtempSync(join(tmpdir(), "colony-artifacts-"));
  let store: Store;
  let now = Date.UTC(2030, 0, 1);
  let service: ArtifactService;

  before(async () => {
    store = createSqliteStore({ path: join(dir, "colony.db") });
    await store.migrate();
    service = new ArtifactService({
      store,
      dataDir: dir,
      urlKey: Buffer.alloc(32, 7),
      expiresAfterMs: 60_000,
      maxBytes: 1000,
      now: () => now,
    });
  });
  after(async () => {
    await service.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("collects globs and directories relative to the work dir, named by relative path", async () => {
    const work = join(dir, "work");
    mkdirSync(join(work, "out", "deep"), { recursive: true });
    writeFileSync(join(work, "out", "a.txt"), "same");
    writeFileSync(join(work, "out", "deep", "b.txt"), "same");
    writeFileSync(join(work, "c.log"), "log");
    const { stored, unmatched } = await service.collect({
      workDir: work,
      paths: ["out", "*.log", "nothing/*"],
      owner: { taskExecutionId: "exec0001", taskType: "build" },
    });
    assert.deepEqual(
      stored.map((a) => [a.name, a.index, a.size]),
      [
        ["c.log", 0, 3],
        ["out/a.txt", 1, 4],
        ["out/deep/b.txt", 2, 4],
      ],
    );
    assert.deepEqual(unmatched, ["nothing/*"]);
    assert.equal(stored[1]!.sha256, stored[2]!.sha256, "same content, one blob");
    await assert.rejects(
      service.collect({
        workDir: work,
        paths: ["../escape"],
        owner: { taskExecutionId: "exec0001" },
      }),
      /leaves the task's working directory/,
    );
    const target = join(dir, "fetched");
    assert.equal(await service.fetch(["exec0001"], target), 3);
    assert.equal(readFileSync(join(target, "out", "deep", "b.txt"), "utf8"), "same");
  });

  it("refuses bytes over the size limit and leaves no temporary file", async () => {
    const blobs = new BlobStore(join(dir, "limits"));
    await assert.rejects(
      blobs.receive(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), 1000),
      (e: unknown) => {
        assert.equal((e as { status?: number }).status, 413);
        return true;
      },
    );
    assert.deepEqual(readdirSync(join(dir, "limits", "tmp")), []);
    const pending = await blobs.receive(Readable.from(["hello"]), 1000);
    assert.deepEqual({ hash: pending.md5, challenge: pending.challenge }, seedHashes("hello"));
    await blobs.commit(pending);
    assert.equal(readFileSync(blobs.path(pending.sha256), "utf8"), "hello");
  });

  it("sweeps expired artifacts and drops a blob only when nothing uses it", async () => {
    const early = await service.collect({
      workDir: join(dir, "work"),
      paths: ["c.log"],
      owner: { taskExecutionId: "exec0002", expiresAfterMs: 1000 },
    });
    const shared = early.stored[0]!.sha256;
    const blob = service.blobs.path(shared);
    now += 2000;
    assert.equal(await service.sweep(), 1);
    assert.ok(existsSync(blob), "exec0001's c.log still uses the blob");
    now += 60_000;
    assert.equal(await service.sweep(), 3);
    assert.ok(!existsSync(blob));
    assert.deepEqual((await store.asyncActions.listArtifacts({})).items, []);
  });
});
