/** What colony stores as JSON (params, task contexts) must survive JSON.stringify. */

/** Why `value` cannot be stored as JSON (a BigInt, a cycle), or undefined when it can. */
export function jsonProblem(value: unknown): string | undefined {
  try {
    JSON.stringify(value);
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/\s+/g, " ");
  }
}
