/**
 * Checks a pod (or secret) against the official Kubernetes API schema, as an API server
 * with `fieldValidation: Strict` would: the kubernetes-models validators (generated
 * from the Kubernetes OpenAPI document: types, required fields, formats such as
 * quantities) plus unknown-field detection, walking @kubernetes/client-node's model
 * type maps (generated from the same document), since the OpenAPI schema itself
 * allows extra keys.
 */
import { Pod } from "kubernetes-models/v1/Pod";
import { Secret } from "kubernetes-models/v1/Secret";

type Models = Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>;
let models: Models | undefined;

async function load(): Promise<Models> {
  models ??= (await import("@kubernetes/client-node")) as unknown as Models;
  return models;
}

function walk(m: Models, value: unknown, type: string, path: string, out: string[]): void {
  if (value === null || value === undefined) return;
  const arr = /^Array<(.+)>$/.exec(type);
  if (arr) {
    if (!Array.isArray(value)) out.push(`${path}: expected a list`);
    else value.forEach((v, i) => walk(m, v, arr[1]!, `${path}[${i}]`, out));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== "object") out.push(`${path}: expected a mapping`);
    else for (const [k, v] of Object.entries(value)) walk(m, v, map[1]!, `${path}.${k}`, out);
    return;
  }
  const model = m[type];
  if (model?.getAttributeTypeMap) {
    if (typeof value !== "object" || Array.isArray(value)) {
      out.push(`${path}: expected an object (${type})`);
      return;
    }
    const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
      const t = attrs.get(k);
      if (t === undefined) out.push(`${path}.${k}: unknown field of ${type}`);
      else walk(m, v, t, `${path}.${k}`, out);
    }
  }
}

/** Every problem the official schema finds in `pod`; empty when it is valid. */
export async function podProblems(pod: unknown): Promise<string[]> {
  const out: string[] = [];
  try {
    new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate();
  } catch (err) {
    out.push(`schema: ${(err as Error).message}`);
  }
  walk(await load(), pod, "V1Pod", "pod", out);
  return out;
}

export async function secretProblems(secret: unknown): Promise<string[]> {
  const out: string[] = [];
  try {
    new Secret(secret as ConstructorParameters<typeof Secret>[0]).validate();
  } catch (err) {
    out.push(`schema: ${(err as Error).message}`);
  }
  walk(await load(), secret, "V1Secret", "secret", out);
  return out;
}
