/** Times and sizes as people read them. */

export function duration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** From `start` to `end` (or now, for something still running). */
export function span(
  start: string | null | undefined,
  end: string | null | undefined,
  now = Date.now(),
): string {
  if (!start) return "";
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : now;
  return duration(b - a);
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "";
  const d = now - Date.parse(iso);
  if (d < -1000) return `in ${duration(-d)}`;
  if (d < 5000) return "just now";
  return `${duration(d).replace(/ \d+ (s|m|h)$/, "")} ago`;
}

export function clock(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return d.toDateString() === today.toDateString()
    ? time
    : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** A short display of any JSON value. */
export function show(value: unknown): string {
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** Why a task waits for an ant (`waiting` of GET /api/ants), in words. */
export function waitingWhy(reason: string, leftPending: boolean): string {
  if (leftPending) return "no connected ant serves it (job left pending)";
  if (reason === "no_ant") return "no connected ant serves it";
  if (reason === "reconnect") return "an agent may hold it: waiting for agents to reconnect";
  return "every ant for it is full";
}
