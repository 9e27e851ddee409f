import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { appendFile, mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { followFile, notifyDone, notifyFileChanged, watchedPathCount } from "./output-follow.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-follow-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("followFile", () => {
  it("streams a file from an offset and ends at its end without follow", async () => {
    const path = join(dir, "plain");
    await writeFile(path, "hello world\n");
    assert.equal((await collect(followFile(path, { follow: false }))).toString(), "hello world\n");
    assert.equal(
      (await collect(followFile(path, { follow: false, offset: 6 }))).toString(),
      "world\n",
    );
    assert.equal((await collect(followFile(path, { follow: false, offset: 100 }))).toString(), "");
    assert.equal(watchedPathCount(), 0);
  });

  it("fails for a missing file without follow", async () => {
    await assert.rejects(collect(followFile(join(dir, "missing"), { follow: false })), /ENOENT/);
  });

  it("follows appends and ends after the last byte once done", async () => {
    const path = join(dir, "follow");
    await writeFile(path, "a\n");
    let done = false;
    const stream = followFile(path, { follow: true, done: () => done });
    const result = collect(stream);
    for (let i = 0; i < 5; i++) {
      await sleep(20);
      await appendFile(path, `line ${i}\n`);
    }
    await appendFile(path, "last\n");
    done = true;
    notifyDone(path);
    assert.equal((await result).toString(), "a\nline 0\nline 1\nline 2\nline 3\nline 4\nlast\n");
    assert.equal(watchedPathCount(), 0);
  });

  it("waits for a file that does not exist yet", async () => {
    const path = join(dir, "later");
    let done = false;
    const result = collect(followFile(path, { follow: true, done: () => done }));
    await sleep(50);
    await writeFile(path, "appeared\n");
    notifyFileChanged(path);
    await sleep(50);
    done = true;
    notifyDone(path);
    assert.equal((await result).toString(), "appeared\n");
  });

  it("sees a file whose folder does not exist yet as soon as it is written, not at the next safety tick", async () => {
    // A task's output file when a client follows it before the task started: its unit
    // dir is made at the start. Nobody calls notifyFileChanged here; the watch must see it.
    const unit = join(dir, "unit-later");
    const path = join(unit, "stdout");
    let done = false;
    const stream = followFile(path, { follow: true, done: () => done });
    const first = new Promise<number>((resolve) =>
      stream.once("data", () => resolve(performance.now())),
    );
    const result = collect(stream);
    await sleep(100);
    await mkdir(unit);
    await sleep(20);
    await writeFile(path, "one\n");
    const wroteAt = performance.now();
    const at = await first;
    await appendFile(path, "two\n");
    await sleep(20);
    done = true;
    notifyDone(path);
    assert.equal((await result).toString(), "one\ntwo\n");
    // The safety timer ticks a second after the follow began: a first line by it would
    // come ~880 ms after the write; the watch sees it at once.
    assert.ok(at - wroteAt < 500, `the first bytes came ${(at - wroteAt).toFixed(0)} ms after`);
    assert.equal(watchedPathCount(), 0);
  });

  it("gives each of 20 concurrent followers every appended byte, in order, with one watch", async () => {
    const path = join(dir, "many");
    await writeFile(path, "");
    let done = false;
    const followers = Array.from({ length: 20 }, () =>
      followFile(path, { follow: true, done: () => done }),
    );
    const results = followers.map(collect);
    assert.equal(watchedPathCount(), 1);
    const written: Buffer[] = [];
    const fh = await open(path, "a");
    for (let i = 0; i < 200; i++) {
      const chunk = randomBytes(1 + Math.floor(Math.random() * 5000));
      written.push(chunk);
      await fh.write(chunk);
      if (i % 20 === 0) await sleep(5);
    }
    await fh.close();
    done = true;
    notifyDone(path);
    const expected = Buffer.concat(written);
    for (const r of await Promise.all(results)) assert.ok(r.equals(expected));
    assert.equal(watchedPathCount(), 0);
  });

  it("lets a slow follower catch up without holding back a fast one (backpressure)", async () => {
    const path = join(dir, "slow");
    const data = randomBytes(2 * 1024 * 1024);
    await writeFile(path, data);
    const slow = followFile(path, { follow: true, done: () => true });
    slow.pause();
    const fast = await collect(followFile(path, { follow: true, done: () => true }));
    assert.ok(fast.equals(data));
    // The paused stream read only up to its buffer limit, not the whole file.
    assert.ok(slow.readableLength <= 2 * slow.readableHighWaterMark);
    const chunks: Buffer[] = [];
    for await (const chunk of slow) {
      chunks.push(chunk as Buffer);
      if (chunks.length % 8 === 0) await sleep(1);
    }
    assert.ok(Buffer.concat(chunks).equals(data));
  });

  it("streams a 50 MB file completely", async () => {
    const path = join(dir, "big");
    const block = randomBytes(1024 * 1024);
    const hashIn = createHash("sha256");
    const out = createWriteStream(path);
    for (let i = 0; i < 50; i++) {
      block[0] = i; // no two blocks alike
      hashIn.update(block);
      if (!out.write(Buffer.from(block)))
        await new Promise<void>((r) => out.once("drain", () => r()));
    }
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
    const hashOut = createHash("sha256");
    let size = 0;
    for await (const chunk of followFile(path, { follow: true, done: () => true })) {
      hashOut.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    assert.equal(size, 50 * 1024 * 1024);
    assert.equal(hashOut.digest("hex"), hashIn.digest("hex"));
  });

  it("stops and releases the watch when its signal aborts", async () => {
    const path = join(dir, "abort");
    await writeFile(path, "x");
    const ac = new AbortController();
    const stream = followFile(path, { follow: true, signal: ac.signal });
    const result = collect(stream);
    await sleep(20);
    ac.abort();
    await assert.rejects(result, { name: "AbortError" });
    assert.equal(watchedPathCount(), 0);
  });
});
