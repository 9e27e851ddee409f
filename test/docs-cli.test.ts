/**
 * The colony command lines the docs show cannot rot: in every shell block of README.md
 * and docs/*.md, a line that runs `colony <command>` names a command colony has, and
 * every `--flag` on it is one that command's --help lists. (Sessions and output are
 * run by the tests of each page; this catches a renamed or removed flag everywhere.)
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ROOT, runCli } from "./support/cli.ts";

interface CommandLine {
  where: string;
  command: string;
  flags: string[];
}

/** The fenced code blocks of a markdown text: language ("" when none), first line, lines. */
function codeBlocks(markdown: string): Array<{ lang: string; line: number; lines: string[] }> {
  const out: Array<{ lang: string; line: number; lines: string[] }> = [];
  let open: { lang: string; line: number; lines: string[] } | undefined;
  markdown.split("\n").forEach((text, i) => {
    const fence = /^```(\S*)\s*$/.exec(text);
    if (fence && !open) open = { lang: fence[1]!, line: i + 2, lines: [] };
    else if (fence && open) {
      out.push(open);
      open = undefined;
    } else open?.lines.push(text);
  });
  return out;
}

function documentedCommandLines(): CommandLine[] {
  const files = [
    "README.md",
    ...readdirSync(join(ROOT, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  const out: CommandLine[] = [];
  for (const file of files) {
    for (const block of codeBlocks(readFileSync(join(ROOT, file), "utf8"))) {
      if (!["", "sh", "console", "bash"].includes(block.lang)) continue;
      block.lines.forEach((raw, i) => {
        // "$ npx colony run x", "colony run x  # comment", "... | colony work submit x";
        // "colony x: message" is output.
        const line = raw
          .replace(/^\$ /, "")
          .replace(/^.*\|\s*(?=colony )/, "")
          .replace(/^npx /, "")
          .replace(/\s#.*$/, "");
        const match = /^colony ([a-z]+)\b(?!:)(.*)$/.exec(line);
        if (!match) return;
        const flags = [...match[2]!.matchAll(/(?:^|\s|\[)(--[a-z][a-z-]*)/g)].map((f) => f[1]!);
        out.push({ where: `${file}:${block.line + i}`, command: match[1]!, flags });
      });
    }
  }
  return out;
}

describe("colony command lines in the docs", () => {
  it("name real commands and flags their --help lists", async () => {
    const lines = documentedCommandLines();
    assert.ok(lines.length >= 50, `found ${lines.length} command lines`);
    const top = await runCli(["--help"]);
    const help = new Map<string, string>();
    for (const { where, command, flags } of lines) {
      // "colony server listening on ..." is the server's output, not a command line.
      if (command === "server" && flags.length === 0) continue;
      assert.match(top.stdout, new RegExp(`^  ${command}\\b`, "m"), `${where}: colony ${command}`);
      if (!help.has(command)) {
        const r = await runCli([command, "--help"]);
        help.set(command, r.stdout + r.stderr);
      }
      for (const flag of flags) {
        assert.ok(
          help.get(command)!.includes(flag),
          `${where}: colony ${command} ${flag} is not in 'colony ${command} --help'`,
        );
      }
    }
  });
});
