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

/**
 * Freezes an object graph in place and returns it. An object already frozen is taken to be
 * frozen through (what this function leaves), so shared parts are not walked again.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
