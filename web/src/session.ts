import type { SessionView } from "./types.ts";

/** Whether the logged-in role may submit, cancel, restart and save definitions. */
export function canWrite(session: SessionView): boolean {
  return session.role === "writer" || session.role === "admin";
}
