import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import pg from "pg";
import { postgres } from "../../test/support/services.ts";
import { StoreError } from "../core/errors.ts";
import type { JobRequest } from "../core/job-request.ts";
import { createPostgresStore } from "./postgres-store.ts";
import { jobDef } from "./store-conformance-fixtures.ts";
import { storeConformance } from "./store-conformance.ts";
import type { Store } from "./store.ts";

const service = await postgres();
const run = randomBytes(4).toString("hex");
const schemas: string[] = [];

/** A fresh, migrated store in a schema of its own (dropped at the end of the run). */
async function fresh(schema = `colony_test_${run}_${schemas.length}`): Promise<Store | undefined> {
  if (!service.url) return undefined;
  if (!schemas.includes(schema)) schemas.push(schema);
  const store = createPostgresStore({ url: service.url, schema, poolSize: 6 });
  await store.migrate();
  return store;
}

async function dropSchemas(): Promise<void> {
  if (!service.url || schemas.length === 0) return;
  const client = new pg.Client({ connectionString: service.url });
  await client.connect();
  try {
    for (const schema of schemas.splice(0))
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

storeConformance(
  "postgres",
  () => fresh(),
  dropSchemas,
  () => service.reason,
);

void describe("postgres store", { skip: service.url ? false : service.reason }, () => {
  after(dropSchemas);

  void it("a burst of thousands of operations waits its turn: none fails on the pool's connect timeout", async () => {
    const schema = `colony_test_${run}_burst`;
    schemas.push(schema);
    // Two connections and a short connect timeout: the pool's own queue would give up
    // on the operations at the back of the burst after 300 ms.
    const store = createPostgresStore({
      url: service.url!,
      schema,
      poolSize: 2,
      connectTimeoutMs: 300,
    });
    await store.migrate();
    try {
      const due = new Date(Date.now() - 1000);
      const results = await Promise.allSettled(
        Array.from({ length: 1500 }, (_, i) =>
          store.createJobRequest({
            jobType: "burst",
            definition: jobDef("burst"),
            params: { i },
            scheduledAt: due,
          }),
        ),
      );
      const failed = results.filter((r) => r.status === "rejected");
      assert.equal(
        failed.length,
        0,
        String((failed[0] as PromiseRejectedResult | undefined)?.reason),
      );
      assert.equal(await store.countJobRequests("burst", ["PENDING"]), 1500);
    } finally {
      await store.close();
    }
  });

  void it("two servers (two pools) on one schema claim each request exactly once", async () => {
    const schema = `colony_test_${run}_shared`;
    const a = (await fresh(schema))!;
    const b = (await fresh(schema))!;
    try {
      const due = new Date(Date.now() - 1000);
      await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          a.createJobRequest({
            jobType: "race",
            definition: jobDef("race"),
            params: { i },
            scheduledAt: due,
          }),
        ),
      );
      const claimer = async (store: Store, owner: string) => {
        const got: JobRequest[] = [];
        for (;;) {
          const batch = await store.claimDueJobRequests(owner, new Date(), 30_000, 4);
          if (batch.length === 0) return got;
          got.push(...batch);
        }
      };
      const results = await Promise.all([
        claimer(a, "a1"),
        claimer(a, "a2"),
        claimer(b, "b1"),
        claimer(b, "b2"),
      ]);
      const ids = results.flat().map((r) => r.id);
      assert.equal(ids.length, 60);
      assert.equal(new Set(ids).size, 60);
      assert.ok(results.filter((r) => r.length > 0).length >= 2, "the work was shared");
    } finally {
      await a.close();
      await b.close();
    }
  });

  void it("an unreachable server gives a StoreError that names it without credentials", async () => {
    const store = createPostgresStore({ url: "postgres://colony:secret@127.0.0.1:1/nowhere" });
    try {
      await assert.rejects(store.migrate(), (error: unknown) => {
        assert.ok(error instanceof StoreError, String(error));
        assert.match(error.message, /cannot reach PostgreSQL at 127\.0\.0\.1:1\/nowhere/);
        assert.doesNotMatch(error.message, /secret/);
        return true;
      });
    } finally {
      await store.close();
    }
  });

  void it("a wrong password gives a StoreError saying to check the URL", async () => {
    const url = new URL(service.url!);
    url.password = "wrong-password";
    const store = createPostgresStore({ url: url.toString() });
    try {
      await assert.rejects(store.getJobRequest(1), (error: unknown) => {
        assert.ok(error instanceof StoreError, String(error));
        assert.match(error.message, /refused the login/);
        assert.doesNotMatch(error.message, /wrong-password/);
        return true;
      });
    } finally {
      await store.close();
    }
  });

  void it("refuses a schema name that is not a plain identifier", () => {
    assert.throws(
      () => createPostgresStore({ url: service.url!, schema: 'x"; DROP' }),
      /lowercase SQL identifier/,
    );
  });

  void it("a closed store says so", async () => {
    const store = (await fresh())!;
    await store.close();
    await store.close();
    await assert.rejects(store.getJobRequest(1), /is closed/);
  });
});
