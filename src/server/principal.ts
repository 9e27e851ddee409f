/**
 * Who is calling, and what they may do. Roles are ordered for the API
 * (reader < writer < admin); `ant` is separate: it only opens /ws/ants.
 */
export const ROLES = ["reader", "writer", "admin", "ant"] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  /** Token name, certificate CN, or "anonymous" when auth is off. */
  name: string;
  role: Role;
  /**
   * How the caller proved it: a token, a client certificate, a dashboard session (made
   * from a token), another server of the store relaying output (server/relay.ts), or
   * nothing (auth off).
   */
  via: "token" | "certificate" | "session" | "relay" | "none";
  tokenId?: string;
}

const RANK: Record<Role, number> = { reader: 1, writer: 2, admin: 3, ant: 0 };

/** Whether `have` may do what needs `need`. Admin may do everything, ant only ant things. */
export function allows(have: Role, need: Role): boolean {
  if (have === "admin") return true;
  if (need === "ant") return have === "ant";
  return RANK[have] >= RANK[need];
}

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}
