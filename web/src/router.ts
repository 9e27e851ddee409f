/**
 * Hash routes (`#/jobs/42?task=build`): the server serves one page at `/`, so links,
 * reloads and the back button work without any server-side routing.
 */
import { useEffect, useState } from "preact/hooks";

export interface Route {
  /** Path segments, e.g. ["jobs", "42"]. */
  path: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = (q < 0 ? raw : raw.slice(0, q))
    .split("/")
    .filter(Boolean)
    .map((s) => decodeURIComponent(s));
  return { path, query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

/** A hash link: href("jobs", 42) -> "#/jobs/42"; query entries with empty values are left out. */
export function href(
  ...parts: Array<string | number | Record<string, string | undefined>>
): string {
  let query = "";
  const segments: string[] = [];
  for (const p of parts) {
    if (typeof p === "object") {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(p)) if (v) q.set(k, v);
      const s = q.toString();
      if (s) query = "?" + s;
    } else segments.push(encodeURIComponent(String(p)));
  }
  return "#/" + segments.join("/") + query;
}

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, "", to);
  else location.hash = to.replace(/^#/, "");
  if (replace) dispatchEvent(new HashChangeEvent("hashchange"));
}
