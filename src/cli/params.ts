import { UsageError } from "./output.ts";

/** `--param k=v` pairs into request params (values stay strings). */
export function parseParams(pairs: string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--param needs KEY=VALUE, got '${pair}'`);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return params;
}
