/**
 * Reading resources whose exact shape belongs to features that evolve on their own
 * (ants, units, schedules): lists may be `{items}` or arrays, and a field may go by a few
 * names. The pages show what is there rather than break on a renamed key.
 */
export type Row = Record<string, unknown>;

export function itemsOf(data: unknown): Row[] {
  if (Array.isArray(data)) return data as Row[];
  if (data && typeof data === "object") {
    for (const key of ["items", "ants", "units", "schedules", "data"]) {
      const v = (data as Row)[key];
      if (Array.isArray(v)) return v as Row[];
    }
  }
  return [];
}

export function pick(row: Row, ...keys: string[]): unknown {
  for (const k of keys) if (row[k] !== undefined && row[k] !== null) return row[k];
  return undefined;
}

export function text(row: Row, ...keys: string[]): string {
  const v = pick(row, ...keys);
  if (v === undefined) return "";
  if (Array.isArray(v)) return v.join(", ");
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

export function num(row: Row, ...keys: string[]): number | undefined {
  const v = pick(row, ...keys);
  return typeof v === "number"
    ? v
    : typeof v === "string" && v !== "" && !Number.isNaN(Number(v))
      ? Number(v)
      : undefined;
}

export function list(row: Row, ...keys: string[]): string[] {
  const v = pick(row, ...keys);
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === "string" && v) return v.split(",").map((s) => s.trim());
  return [];
}
