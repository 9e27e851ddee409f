import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import {
  createMaskTransform,
  maskText,
  MAX_OUTPUT_LINE_BYTES,
  parseSetOutputs,
  SetOutputScanner,
} from "./outputs.ts";

void describe("parseSetOutputs", () => {
  void it("reads ::set-output lines; the last one for a name wins; \\r\\n is fine", () => {
    const text = [
      "building...",
      "::set-output name=version::1.2.3",
      "  ::set-output name=url::https://x.example/a?b=c::d",
      "::set-output name=version::1.2.4",
      "not ::set-output name=ignored::x",
      "::set-output name=empty::",
    ].join("\r\n");
    assert.deepEqual(parseSetOutputs(text), {
      version: "1.2.4",
      url: "https://x.example/a?b=c::d",
      empty: "",
    });
  });

  void it("ignores lines longer than 64 KiB", () => {
    const long = `::set-output name=big::${"x".repeat(MAX_OUTPUT_LINE_BYTES)}`;
    assert.deepEqual(parseSetOutputs(`${long}\n::set-output name=small::1`), { small: "1" });
  });
});

void describe("SetOutputScanner", () => {
  const scan = (chunks: Array<string | Buffer>): Record<string, string> => {
    const scanner = new SetOutputScanner();
    for (const c of chunks) scanner.push(typeof c === "string" ? Buffer.from(c) : c);
    return scanner.result();
  };

  void it("joins lines split across chunks, byte by byte too", () => {
    const text =
      "log\n::set-output name=a::1\r\n::set-output name=mot::été\nmore\n::set-output name=last::no newline";
    const expected = { a: "1", mot: "été", last: "no newline" };
    assert.deepEqual(scan([text]), expected);
    const bytes = Buffer.from(text);
    assert.deepEqual(scan([...bytes].map((b) => Buffer.from([b]))), expected);
    assert.deepEqual(
      scan([bytes.subarray(0, 20), bytes.subarray(20, 47), bytes.subarray(47)]),
      expected,
    );
  });

  void it("result() can be asked mid-stream and the scan goes on", () => {
    const scanner = new SetOutputScanner();
    scanner.push(Buffer.from("::set-output name=a::par"));
    assert.deepEqual(scanner.result(), { a: "par" });
    scanner.push(Buffer.from("tial\n::set-output name=a::2\n"));
    assert.deepEqual(scanner.result(), { a: "2" });
  });

  void it("skips lines over 64 KiB in bounded memory and resumes after them", () => {
    const scanner = new SetOutputScanner();
    scanner.push(Buffer.from("::set-output name=huge::"));
    const block = Buffer.alloc(16 * 1024, "y");
    for (let i = 0; i < 1024; i++) scanner.push(block); // 16 MiB on one line
    scanner.push(Buffer.from("\n::set-output name=after::ok\n"));
    assert.deepEqual(scanner.result(), { after: "ok" });
    const other = new SetOutputScanner();
    for (let i = 0; i < 100; i++) other.push(block); // a long ordinary line
    other.push(Buffer.from("\n::set-output name=x::1"));
    assert.deepEqual(other.result(), { x: "1" });
  });
});

async function maskThrough(secrets: string[], chunks: Buffer[]): Promise<string> {
  const mask = createMaskTransform(secrets);
  const [, out] = await Promise.all([pipeline(Readable.from(chunks), mask), buffer(mask)]);
  return out.toString("utf8");
}

void describe("createMaskTransform and maskText", () => {
  const secrets = ["hunter2", "s3cr3t-token", "ab"];

  void it("masks every occurrence; ignores secrets shorter than 3 characters", () => {
    const text = "user hunter2 uses s3cr3t-token, again hunter2; ab stays";
    const want = "user *** uses ***, again ***; ab stays";
    assert.equal(maskText(text, secrets), want);
    assert.equal(maskText(text, []), text);
  });

  void it("gives the same output however the stream is chunked, also mid-secret", async () => {
    const text = "a hunter2 b s3cr3t-tokens3cr3t-token c hunter2hunter2 é hunter2";
    const want = maskText(text, secrets);
    assert.equal(want, "a *** b *** c *** é ***");
    const bytes = Buffer.from(text);
    assert.equal(await maskThrough(secrets, [bytes]), want);
    assert.equal(
      await maskThrough(
        secrets,
        [...bytes].map((b) => Buffer.from([b])),
      ),
      want,
    );
    for (let cut = 1; cut < bytes.length; cut++) {
      assert.equal(
        await maskThrough(secrets, [bytes.subarray(0, cut), bytes.subarray(cut)]),
        want,
        `cut at ${cut}`,
      );
    }
  });

  void it("masks overlapping secrets completely, even when split", async () => {
    const overlapping = ["xxabc", "abcdefgh"];
    const text = "1 xxabcdefgh 2";
    assert.equal(maskText(text, overlapping), "1 *** 2");
    const bytes = Buffer.from(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const out = await maskThrough(overlapping, [bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.equal(out, "1 *** 2", `cut at ${cut}`);
    }
  });

  void it("holds back less than the longest secret and flushes the rest at the end", async () => {
    const mask = createMaskTransform(["hunter2"]);
    const seen: Buffer[] = [];
    mask.on("data", (c: Buffer) => seen.push(c));
    mask.write(Buffer.from("0123456789"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(Buffer.concat(seen).toString(), "0123");
    mask.end(Buffer.from("hunt"));
    await new Promise((resolve) => mask.on("end", resolve));
    assert.equal(Buffer.concat(seen).toString(), "0123456789hunt");
  });

  void it("passes data through unchanged when there is nothing to mask", async () => {
    assert.equal(await maskThrough(["no"], [Buffer.from("no secrets here")]), "no secrets here");
  });
});
