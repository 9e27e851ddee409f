/**
 * MESSAGING without a Redis to talk to (a loopback port nothing listens on): the executor
 * and the worker SDK fail at once, naming the address and the reason ioredis only tells
 * its error listeners ("Connection is closed." was all they said), and leave no client
 * retrying in the background.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import { ColonyError, startMessagingWorker } from "../src/index.ts";
import { taskDefinition } from "../src/core/job-definition.ts";
import { createMessagingExecutor } from "../src/executors/messaging/messaging-executor.ts";
import { tempDir } from "./support/cli.ts";

/** A loopback port that was free a moment ago. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const unavailable = (port: number) => (e: unknown) => {
  assert.ok(e instanceof ColonyError, String(e));
  assert.equal(e.code, "COLONY_MESSAGING_UNAVAILABLE");
  assert.match(e.message, new RegExp(`redis://127\\.0\\.0\\.1:${port}: connect ECONNREFUSED`));
  return true;
};

describe("MESSAGING with no Redis listening", () => {
  it("the worker SDK rejects at start with the address and ECONNREFUSED", async () => {
    const port = await closedPort();
    await assert.rejects(
      startMessagingWorker({
        redisUrl: `redis://127.0.0.1:${port}`,
        requestQueue: "q",
        replyQueue: "r",
        handle: () => ({}),
      }),
      unavailable(port),
    );
  });

  it("the executor fails start with the address and ECONNREFUSED; isInstalled is false", async () => {
    const port = await closedPort();
    const executor = createMessagingExecutor({ redisUrl: `redis://127.0.0.1:${port}` });
    const dir = tempDir("colony-no-redis-");
    try {
      assert.equal(await executor.isInstalled(), false);
      await assert.rejects(
        executor.start({
          executionId: "m1",
          method: "MESSAGING",
          task: taskDefinition("t", {
            method: "MESSAGING",
            messagingRequestQueue: "q",
            messagingReplyQueue: "r",
          }),
          env: {},
          variables: {},
          unitDir: `${dir.path}/m1`,
        }),
        unavailable(port),
      );
    } finally {
      await executor.close();
      dir.remove();
    }
  });
});
