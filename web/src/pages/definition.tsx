/**
 * One job type: a form to submit it with params (its job variables with their
 * defaults, and the template names its tasks use), and its YAML as saved.
 */
import type { JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { call } from "../api.ts";
import { CodeView, ErrorBox, Loading } from "../components/common.tsx";
import { useLoad } from "../hooks.ts";
import { href, navigate } from "../router.ts";
import { canWrite } from "../session.ts";
import type {
  JobDefinitionView,
  JobRequestView,
  SessionView,
  StoredDefinitionView,
} from "../types.ts";

interface Field {
  name: string;
  /** The default shown (job variable value), if any. */
  value: string;
  secret: boolean;
  /** Where the name comes from. */
  origin: "variable" | "template";
}

function stringsIn(value: unknown, out: string[]): void {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) stringsIn(v, out);
  else if (value && typeof value === "object")
    for (const v of Object.values(value)) stringsIn(v, out);
}

/** The params a user may want to set: job variables, then other {{.Name}}s the tasks use. */
export function paramFields(def: JobDefinitionView): Field[] {
  const fields: Field[] = [];
  const known = new Set<string>();
  for (const [name, raw] of Object.entries(def.job_variables ?? {})) {
    const secret =
      typeof raw === "object" && raw !== null && (raw as { secret?: unknown }).secret === true;
    const value = secret ? "" : typeof raw === "string" ? raw : JSON.stringify(raw);
    fields.push({ name, value, secret, origin: "variable" });
    known.add(name);
  }
  const texts: string[] = [];
  stringsIn(def.tasks, texts);
  const outputs = new Set<string>();
  for (const t of texts)
    for (const m of t.matchAll(/::set-output name=([\w.-]+)::/g)) outputs.add(m[1]!);
  for (const t of def.tasks) for (const name of Object.keys(t.variables ?? {})) known.add(name);
  for (const t of texts) {
    for (const m of t.matchAll(/\{\{\s*\.([A-Za-z_]\w*)/g)) {
      const name = m[1]!;
      if (known.has(name) || outputs.has(name)) continue;
      known.add(name);
      fields.push({ name, value: "", secret: false, origin: "template" });
    }
  }
  return fields;
}

export function DefinitionPage({
  jobType,
  session,
  tab,
}: {
  jobType: string;
  session: SessionView;
  tab?: string;
}): JSX.Element {
  const path = `/api/job-definitions/${encodeURIComponent(jobType)}`;
  const stored = useLoad((signal) => call<StoredDefinitionView>(path, { signal }), path);
  const yaml = useLoad(
    (signal) => call<string>(`${path}?format=yaml`, { signal, text: true }),
    path + "y",
  );
  const fields = useMemo(
    () => (stored.data ? paramFields(stored.data.definition) : []),
    [stored.data],
  );
  const [values, setValues] = useState<Record<string, string>>({});
  const [extra, setExtra] = useState<Array<{ name: string; value: string }>>([]);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (tab === "run" && stored.data) first.current?.focus();
  }, [tab, stored.data]);
  const writer = canWrite(session);

  if (!stored.data) return stored.error ? <ErrorBox error={stored.error} /> : <Loading />;
  const d = stored.data;

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    const params: Record<string, string> = {};
    for (const f of fields) {
      const v = values[f.name];
      if (v !== undefined && v !== "" && v !== f.value) params[f.name] = v;
    }
    for (const x of extra) if (x.name.trim()) params[x.name.trim()] = x.value;
    try {
      const job = await call<JobRequestView>("/api/job-requests", {
        json: { job_type: d.job_type, params },
      });
      navigate(href("jobs", job.id));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="def-title">
      <div class="page-head">
        <h1 id="def-title">
          <a href={href("definitions")} class="plain muted">
            Definitions /
          </a>{" "}
          {d.job_type}
        </h1>
        {d.paused ? <span class="badge s-PAUSED">paused</span> : null}
        <span class="spacer" />
        <a class="button" href={href("jobs", { type: d.job_type })}>
          Its jobs
        </a>
        <a
          class={`button${writer ? "" : " disabled"}`}
          href={href("definitions", "new", { from: d.job_type })}
        >
          Edit
        </a>
      </div>
      {d.definition.description ? <p class="muted">{d.definition.description}</p> : null}
      <div class="split">
        <form class="card run-form" onSubmit={(e) => void submit(e)} aria-labelledby="run-title">
          <h2 id="run-title">Run {d.job_type}</h2>
          {fields.length === 0 && extra.length === 0 ? (
            <p class="muted">This job takes no params.</p>
          ) : null}
          {fields.map((f, i) => (
            <label key={f.name} class="field">
              <span>
                {f.name}
                {f.origin === "template" ? <span class="muted"> (used by its tasks)</span> : null}
              </span>
              {f.secret ? (
                <input
                  ref={i === 0 ? first : undefined}
                  name={f.name}
                  type="password"
                  autocomplete="off"
                  placeholder="secret: leave empty to keep the saved value"
                  value={values[f.name] ?? ""}
                  onInput={(e) =>
                    setValues({ ...values, [f.name]: (e.target as HTMLInputElement).value })
                  }
                />
              ) : (
                <input
                  ref={i === 0 ? first : undefined}
                  name={f.name}
                  autocomplete="off"
                  placeholder={f.value}
                  value={values[f.name] ?? f.value}
                  onInput={(e) =>
                    setValues({ ...values, [f.name]: (e.target as HTMLInputElement).value })
                  }
                />
              )}
            </label>
          ))}
          {extra.map((x, i) => (
            <div class="field pair" key={i}>
              <input
                aria-label="param name"
                placeholder="name"
                value={x.name}
                onInput={(e) =>
                  setExtra(
                    extra.map((y, j) =>
                      j === i ? { ...y, name: (e.target as HTMLInputElement).value } : y,
                    ),
                  )
                }
              />
              <input
                aria-label="param value"
                placeholder="value"
                value={x.value}
                onInput={(e) =>
                  setExtra(
                    extra.map((y, j) =>
                      j === i ? { ...y, value: (e.target as HTMLInputElement).value } : y,
                    ),
                  )
                }
              />
              <button
                type="button"
                class="small"
                aria-label="remove param"
                onClick={() => setExtra(extra.filter((_, j) => j !== i))}
              >
                ×
              </button>
            </div>
          ))}
          <div class="row">
            <button
              type="button"
              class="small"
              onClick={() => setExtra([...extra, { name: "", value: "" }])}
            >
              + param
            </button>
            <span class="spacer" />
            <button type="submit" class="primary" disabled={busy || !writer || d.paused}>
              {busy ? "Submitting…" : "Submit job"}
            </button>
          </div>
          {!writer ? <p class="muted">Your role ({session.role}) cannot submit jobs.</p> : null}
          <ErrorBox error={error} />
        </form>
        <div class="yaml-pane">
          <h2>
            YAML <span class="muted">version {d.version}</span>
          </h2>
          {yaml.data !== undefined ? (
            <CodeView text={yaml.data} />
          ) : (
            <ErrorBox error={yaml.error} />
          )}
        </div>
      </div>
    </section>
  );
}
