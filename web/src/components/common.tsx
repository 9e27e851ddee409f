/** Small pieces shared by the pages. */
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../api.ts";

export function StateBadge({ state }: { state: string }): JSX.Element {
  return (
    <span class={`badge s-${state}`} data-state={state}>
      {state.toLowerCase()}
    </span>
  );
}

/** A feature this server does not serve (its routes answer 404): shown as such, not as an error. */
export function Unavailable({ what, route }: { what: string; route: string }): JSX.Element {
  return (
    <div class="unavailable" data-unavailable={route}>
      <h2>{what}: not available on this server</h2>
      <p>
        This colony server has no <code>{route}</code> (it answers 404). The page lights up by
        itself once the server has the feature: reload after upgrading.
      </p>
    </div>
  );
}

export function ErrorBox({ error }: { error: unknown }): JSX.Element | null {
  if (!error) return null;
  const e = error instanceof ApiError ? error : undefined;
  return (
    <div class="error" role="alert">
      {e ? <strong>{e.code}</strong> : null}{" "}
      {error instanceof Error ? error.message : String(error)}
    </div>
  );
}

export function Loading(): JSX.Element {
  return <p class="muted">loading…</p>;
}

export function Empty({ children }: { children: ComponentChildren }): JSX.Element {
  return <p class="empty">{children}</p>;
}

/** Re-renders every `ms` while `active` (durations of running things). */
export function useTicker(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [active, ms]);
  return now;
}

/** Whether the window is narrower than a phone-ish width. */
export function useNarrow(px = 700): boolean {
  const query = `(max-width: ${px}px)`;
  const [narrow, setNarrow] = useState(() => matchMedia(query).matches);
  useEffect(() => {
    const m = matchMedia(query);
    const on = () => setNarrow(m.matches);
    m.addEventListener("change", on);
    return () => m.removeEventListener("change", on);
  }, [query]);
  return narrow;
}

/** Source text with line numbers; `errorLine` is marked, with `errorMessage` under it. */
export function CodeView({
  text,
  errorLine,
  errorMessage,
}: {
  text: string;
  errorLine?: number;
  errorMessage?: string;
}): JSX.Element {
  const lines = text.replace(/\n$/, "").split("\n");
  return (
    <pre class="code" tabIndex={0} aria-label="source">
      {lines.map((line, i) => {
        const n = i + 1;
        const bad = n === errorLine;
        return (
          <div
            key={n}
            class={bad ? "code-line bad" : "code-line"}
            data-error-line={bad ? n : undefined}
          >
            <span class="code-no">{n}</span>
            <span class="code-text">{line || " "}</span>
            {bad && errorMessage ? <div class="code-error">{errorMessage}</div> : null}
          </div>
        );
      })}
    </pre>
  );
}
