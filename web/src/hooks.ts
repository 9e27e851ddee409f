/** Data loading for the pages: a fetch with its state, and a throttled refresh. */
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.ts";
import { inChord } from "./keys.ts";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** Fetch again (keeps showing the current data meanwhile). */
  reload: () => void;
  setData: (update: (d: T | undefined) => T | undefined) => void;
}

/** Calls `load` when `key` changes; `reload()` calls it again. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, key: string): Loaded<T> {
  const [data, setDataState] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  const lastKey = useRef(key);
  useEffect(() => {
    const abort = new AbortController();
    if (lastKey.current !== key) {
      lastKey.current = key;
      setDataState(undefined);
    }
    setLoading(true);
    loadRef.current(abort.signal).then(
      (d) => {
        if (abort.signal.aborted) return;
        setDataState(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (abort.signal.aborted) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => abort.abort();
  }, [key, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  const setData = useCallback((u: (d: T | undefined) => T | undefined) => setDataState(u), []);
  return { data, error, loading, reload, setData };
}

/** A function that runs `fn` at most once per `ms` (the last call always runs). */
export function useThrottle(fn: () => void, ms: number): () => void {
  const ref = useRef(fn);
  ref.current = fn;
  const state = useRef<{ timer?: ReturnType<typeof setTimeout>; last: number }>({ last: 0 });
  useEffect(() => () => clearTimeout(state.current.timer), []);
  return useCallback(() => {
    const s = state.current;
    if (s.timer) return;
    const wait = Math.max(0, s.last + ms - Date.now());
    s.timer = setTimeout(() => {
      s.timer = undefined;
      s.last = Date.now();
      ref.current();
    }, wait);
  }, [ms]);
}

export function routeMissing(error: unknown): boolean {
  return error instanceof ApiError && error.routeMissing;
}

/** j/k move between rows of a list (elements with [data-row]); Enter follows the row's link. */
export function useRowKeys(): void {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const el = e.target as HTMLElement;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName)) return;
      if ((e.key !== "j" && e.key !== "k") || inChord()) return;
      const rows = [...document.querySelectorAll<HTMLElement>("[data-row] a.row-link")];
      if (rows.length === 0) return;
      const at = rows.indexOf(document.activeElement as HTMLElement);
      const next = e.key === "j" ? Math.min(rows.length - 1, at + 1) : Math.max(0, at - 1);
      rows[at < 0 ? 0 : next]?.focus();
      e.preventDefault();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);
}
