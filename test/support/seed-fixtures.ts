/**
 * The seed's container examples (test/fixtures/seed-containers, verbatim copies of seed 000's
 * "Docker" and "Kubernetes" YAML) turned into what colony takes: the ant config block
 * as colony.yaml would hold it, validated by the config schema, and the task example
 * as a task of a job definition, parsed by the definition parser.
 */
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { validateConfigFile } from "../../src/config/config.ts";
import { parseJobDefinition } from "../../src/core/definition-parser.ts";
import type { TaskDefinition } from "../../src/core/job-definition.ts";
import type { DockerConfig, KubernetesConfig } from "../../src/executors/container-options.ts";

export type SeedName = "docker-ant" | "docker-task" | "kubernetes-ant" | "kubernetes-task";

export function seedText(name: SeedName): string {
  return readFileSync(
    new URL(`../fixtures/seed-containers/seed-${name}.yaml`, import.meta.url),
    "utf8",
  );
}

/** The `docker:` block of the seed's ant config, through colony's config schema. */
export function seedDockerConfig(): DockerConfig {
  const doc = parse(seedText("docker-ant")) as { docker: unknown };
  return validateConfigFile({ docker: doc.docker }, "seed docker config").docker!;
}

/** The `kubernetes:` block of the seed's ant config, through colony's config schema. */
export function seedKubernetesConfig(): KubernetesConfig {
  const doc = parse(seedText("kubernetes-ant")) as { kubernetes: unknown };
  return validateConfigFile({ kubernetes: doc.kubernetes }, "seed kubernetes config").kubernetes!;
}

/**
 * The seed's task example as a task of a one-task job (the seed's `name:` is the
 * container/pod name; colony also needs a task_type), with `script` lines added.
 */
export function seedTask(
  name: "docker-task" | "kubernetes-task",
  script: string[],
): TaskDefinition {
  const body = seedText(name)
    .trimEnd()
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");
  const yaml = `job_type: seed-${name}\ntasks:\n- task_type: task1\n  script: ${JSON.stringify(script)}\n${body}\n`;
  return parseJobDefinition(yaml).tasks[0]!;
}
