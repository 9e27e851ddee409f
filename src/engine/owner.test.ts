import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { hostname } from "node:os";
import { describe, it } from "node:test";
import { readProcStatSync } from "../core/proc-stat.ts";
import { isDeadLocalOwner, newOwnerId } from "./owner.ts";

/** An owner id naming `pid` on this host. */
const ownerOf = (pid: number) => `${hostname()}:${pid}:abcdef`;

describe("isDeadLocalOwner", () => {
  it("a live process on this host is not dead; this process is not; another host's is unknown", () => {
    assert.equal(isDeadLocalOwner(newOwnerId()), false, "this process");
    assert.equal(isDeadLocalOwner(ownerOf(1)), false, "PID 1");
    assert.equal(isDeadLocalOwner(`elsewhere-${hostname()}:1:abcdef`), false);
    assert.equal(isDeadLocalOwner(undefined), true, "no owner");
  });

  it("a process that exited and was reaped is dead", async () => {
    const child = spawn("true");
    await once(child, "exit");
    assert.equal(isDeadLocalOwner(ownerOf(child.pid!)), true);
  });

  it(
    "a killed process its parent has not reaped yet (a zombie) is dead",
    { skip: process.platform !== "linux" && "zombies are read from /proc" },
    async () => {
      // sh starts a child that is killed at once, then sleeps without waiting for it.
      const parent = spawn("/bin/sh", ["-c", "sleep 30 & echo $!; kill -9 $!; exec sleep 30"]);
      try {
        const [line] = (await once(parent.stdout!, "data")) as [Buffer];
        const pid = Number(String(line).trim());
        assert.ok(pid > 0);
        let state = "";
        for (let i = 0; i < 100 && state !== "Z"; i++) {
          await new Promise((r) => setTimeout(r, 20));
          state = readProcStatSync(pid)?.state ?? "";
        }
        assert.equal(state, "Z", "the killed child is a zombie of its parent");
        assert.equal(isDeadLocalOwner(ownerOf(pid)), true);
      } finally {
        parent.kill("SIGKILL");
      }
    },
  );
});
