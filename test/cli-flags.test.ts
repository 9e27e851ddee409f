/**
 * Mistyped flags: every command answers with what to type (a near flag, or the list),
 * where its --help is, and exit code 2; nothing runs.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseFlags } from "../src/cli/flags.ts";
import { runCli, tempDir } from "./support/cli.ts";

describe("command-line flags", () => {
  it("a near miss names the flag meant, and where --help is", async () => {
    const dir = tempDir();
    try {
      const r = await runCli(["run", "--concurency", "2", "examples/hello-dag.yaml"], {
        env: { COLONY_DATA_DIR: join(dir.path, "data") },
      });
      assert.equal(r.code, 2);
      assert.equal(
        r.stderr.trim(),
        "colony run: unknown option '--concurency'; did you mean '--concurrency'? (see colony run --help)",
      );
      assert.equal(existsSync(join(dir.path, "data")), false, "nothing ran");
    } finally {
      dir.remove();
    }
  });

  it("a flag with nothing near lists the command's flags", async () => {
    const r = await runCli(["server", "--node-id", "a"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^colony server: unknown option '--node-id'; the options are --config, --data-dir, --port,/,
    );
    assert.match(r.stderr, /\(see colony server --help\)\n$/);
    assert.doesNotMatch(r.stderr, /positional argument/);
  });

  it("a flag without its value, and a switch given a value, say how to write them", () => {
    const options = { limit: { type: "string" }, json: { type: "boolean" } } as const;
    assert.throws(() => parseFlags({ args: ["--limit"], options }), {
      message: "--limit needs a value: --limit VALUE (or --limit=VALUE)",
    });
    assert.throws(() => parseFlags({ args: ["--json=yes"], options }), {
      message: "--json is a switch and takes no value: write --json alone",
    });
    assert.throws(() => parseFlags({ args: ["extra"], options }), {
      message: "unexpected 'extra': this command takes only options",
    });
    assert.deepEqual(
      { ...parseFlags({ args: ["--limit", "5", "--json"], options }).values },
      {
        limit: "5",
        json: true,
      },
    );
  });
});
