/**
 * The key that seals secret job variables: every server sharing a store must hold the
 * same one. A server (or a restored data dir) with another key refuses to start, saying
 * what to copy where, instead of failing submits on one server in two with
 * COLONY_SECRET_UNREADABLE. Two servers on one real PostgreSQL, and `colony run` on SQLite.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import { ColonyError } from "../src/core/errors.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { openEmbedded, type Embedded } from "../src/runtime/embedded.ts";
import { runCli, tempDir } from "./support/cli.ts";
import { postgres } from "./support/services.ts";

const SECRET_JOB = `
job_type: sealed
tasks:
  - task_type: show
    method: SHELL
    script: ['echo "length \${#PASS}"']
    environment:
      PASS: "{{.Password}}"
job_variables:
  Password:
    value: hunter2
    secret: true
`;

const service = await postgres();
const dirs: Array<{ remove(): void }> = [];
after(() => dirs.forEach((d) => d.remove()));

function dataDir(): string {
  const dir = tempDir("colony-key-");
  dirs.push(dir);
  return dir.path;
}

const mismatch = (path: string) => (error: unknown) =>
  error instanceof ColonyError &&
  error.code === "COLONY_SECRET_KEY_MISMATCH" &&
  error.message.startsWith(`${path} is not the secret key this store was set up with`) &&
  error.message.includes(
    `Copy secret.key from the data dir of a server that uses this store to ${path}`,
  );

void describe(
  "servers sharing a PostgreSQL store",
  { skip: service.url ? false : service.reason },
  () => {
    const schema = `colony_key_${randomBytes(4).toString("hex")}`;
    const url = `${service.url}?schema=${schema}`;
    const open: Embedded[] = [];
    after(async () => {
      for (const rt of open) await rt.close();
      const client = new pg.Client({ connectionString: service.url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    });

    void it("a second server with its own key refuses to start; with the first's key, it opens what the first sealed", async () => {
      const a = await openEmbedded({ dataDir: dataDir(), storeUrl: url });
      open.push(a);
      await a.engine.saveDefinition(parseJobDefinition(SECRET_JOB), SECRET_JOB);

      const bDir = dataDir();
      await assert.rejects(
        openEmbedded({ dataDir: bDir, storeUrl: url }),
        mismatch(join(bDir, "secret.key")),
      );
      // The key the failed start made is kept, and still is not the store's.
      await assert.rejects(openEmbedded({ dataDir: bDir, storeUrl: url }), {
        message: /^\S+ is not the secret key this store was set up with\. Every server/,
      });

      copyFileSync(join(a.dataDir, "secret.key"), join(bDir, "secret.key"));
      const b = await openEmbedded({ dataDir: bDir, storeUrl: url, engine: { pollMs: 20 } });
      open.push(b);
      const job = await b.engine.submitType("sealed");
      assert.equal(b.engine.openJobDefinition(job).variables.Password?.value, "hunter2");
    });
  },
);

void describe("a data dir whose secret.key is not its store's", () => {
  void it("colony run refuses to start and leaves the store as it was", async () => {
    const dir = dataDir();
    const file = join(dir, "job.yaml");
    writeFileSync(file, SECRET_JOB);
    const data = join(dir, "data");
    const first = await runCli(["run", file, "--data-dir", data, "-q"]);
    assert.equal(first.code, 0, first.stderr);
    rmSync(join(data, "secret.key"));
    const again = await runCli(["run", file, "--data-dir", data, "-q"]);
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /secret\.key is not the secret key this store was set up with \(this data dir had none, so one was made just now\)\..*\[COLONY_SECRET_KEY_MISMATCH\]/,
    );
    assert.ok(existsSync(join(data, "secret.key")));
    const list = await runCli(["run", "--resume", "--data-dir", data, "-q"]);
    assert.match(
      list.stderr,
      /COLONY_SECRET_KEY_MISMATCH/,
      "every start refuses, not only the first",
    );
  });
});
