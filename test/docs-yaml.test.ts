/**
 * The YAML the docs show cannot rot: every ```yaml block of docs/*.md that is a job
 * definition (it has a top-level `job_type:`) is accepted by the definition parser, and
 * every one that is a colony.yaml (its top-level keys are config keys) by the config
 * file's reader, with its line and column on failure. Blocks of other programs'
 * formats (Prometheus, the seeds' container examples) are told apart by their keys.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parse } from "yaml";
import { ConfigFileSchema, readConfigFile } from "../src/config/config.ts";
import { parseJobDefinition } from "../src/core/definition-parser.ts";
import { ROOT, tempDir } from "./support/cli.ts";

interface Block {
  doc: string;
  line: number;
  text: string;
}

function yamlBlocks(): Block[] {
  const out: Block[] = [];
  const dir = join(ROOT, "docs");
  for (const name of readdirSync(dir).filter((f) => f.endsWith(".md"))) {
    const markdown = readFileSync(join(dir, name), "utf8");
    for (const m of markdown.matchAll(/```yaml\n([\s\S]*?)```/g)) {
      const line = markdown.slice(0, m.index).split("\n").length + 1;
      out.push({ doc: `docs/${name}`, line, text: m[1]! });
    }
  }
  return out;
}

const CONFIG_KEYS = new Set(Object.keys(ConfigFileSchema.properties));

function topLevelKeys(text: string): string[] {
  const value = parse(text) as unknown;
  return value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : [];
}

describe("YAML in the docs", () => {
  const blocks = yamlBlocks();
  const tmp = tempDir("colony-docs-yaml-");
  after(() => tmp.remove());

  it("every job definition the docs show is accepted", () => {
    const jobs = blocks.filter((b) => /^job_type:/m.test(b.text));
    assert.ok(jobs.length >= 6, `found ${jobs.length} job definitions`);
    for (const b of jobs) {
      assert.doesNotThrow(() => parseJobDefinition(b.text), `${b.doc}:${b.line}`);
    }
  });

  it("every colony.yaml the docs show is accepted", () => {
    const configs = blocks.filter((b) => {
      const keys = topLevelKeys(b.text);
      return (
        !/^job_type:/m.test(b.text) && keys.length > 0 && keys.every((k) => CONFIG_KEYS.has(k))
      );
    });
    assert.ok(configs.length >= 8, `found ${configs.length} config examples`);
    configs.forEach((b, i) => {
      const file = join(tmp.path, `config-${i}.yaml`);
      writeFileSync(file, b.text);
      assert.doesNotThrow(() => readConfigFile(file), `${b.doc}:${b.line}`);
    });
  });

  it("every other block is another program's format, not a colony file with a typo", () => {
    const others = blocks.filter((b) => {
      const keys = topLevelKeys(b.text);
      return (
        !/^job_type:/m.test(b.text) && !(keys.length > 0 && keys.every((k) => CONFIG_KEYS.has(k)))
      );
    });
    for (const b of others) {
      const keys = topLevelKeys(b.text);
      // Prometheus (scrape_configs, groups) and the seed's task and ant examples.
      const foreign = keys.some((k) =>
        ["scrape_configs", "groups", "common", "name", "task_type"].includes(k),
      );
      assert.ok(foreign, `${b.doc}:${b.line}: top-level keys ${keys.join(", ")}`);
    }
  });
});
