/** Definitions: the saved job types, with run, edit, pause and resume. */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { call } from "../api.ts";
import { Empty, ErrorBox, Loading } from "../components/common.tsx";
import { ago } from "../format.ts";
import { useLoad, useRowKeys } from "../hooks.ts";
import { href } from "../router.ts";
import { canWrite } from "../session.ts";
import type { SessionView, StoredDefinitionView } from "../types.ts";

export function DefinitionsPage({ session }: { session: SessionView }): JSX.Element {
  const list = useLoad(
    (signal) => call<{ items: StoredDefinitionView[] }>("/api/job-definitions", { signal }),
    "definitions",
  );
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<unknown>();
  useRowKeys();
  const writer = canWrite(session);
  const toggle = async (d: StoredDefinitionView) => {
    setError(undefined);
    try {
      await call(
        `/api/job-definitions/${encodeURIComponent(d.job_type)}/${d.paused ? "resume" : "pause"}`,
        {
          method: "POST",
        },
      );
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  const items = (list.data?.items ?? []).filter((d) =>
    d.job_type.toLowerCase().includes(filter.toLowerCase()),
  );
  return (
    <section aria-labelledby="defs-title">
      <div class="page-head">
        <h1 id="defs-title">Definitions</h1>
        <span class="spacer" />
        <a
          class={`button${writer ? " primary" : " disabled"}`}
          href={href("definitions", "new")}
          aria-disabled={!writer}
        >
          New definition
        </a>
      </div>
      <div class="filters">
        <input
          data-search
          type="search"
          placeholder="filter by type"
          aria-label="filter definitions"
          value={filter}
          onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
        />
      </div>
      <ErrorBox error={list.error ?? error} />
      {!list.data ? (
        list.error ? null : (
          <Loading />
        )
      ) : items.length === 0 ? (
        <Empty>
          No definitions{filter ? " match" : " yet"}.{" "}
          <a href={href("definitions", "new")}>Write one</a>, or save one with{" "}
          <code>colony definitions</code> / <code>POST /api/job-definitions</code>.
        </Empty>
      ) : (
        <div class="table-wrap">
          <table class="list" data-testid="definitions">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col" class="wide">
                  Description
                </th>
                <th scope="col">Tasks</th>
                <th scope="col" class="wide">
                  Version
                </th>
                <th scope="col" class="wide">
                  Saved
                </th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.job_type} data-row data-type={d.job_type}>
                  <td>
                    <a class="row-link" href={href("definitions", d.job_type)}>
                      {d.job_type}
                    </a>
                    {d.paused ? <span class="badge s-PAUSED">paused</span> : null}
                    {d.definition.cron_trigger ? (
                      <span class="badge" title={`cron ${d.definition.cron_trigger}`}>
                        cron
                      </span>
                    ) : null}
                  </td>
                  <td class="wide muted">{d.definition.description ?? ""}</td>
                  <td>{d.definition.tasks.length}</td>
                  <td class="wide">{d.version}</td>
                  <td class="wide" title={d.updated_at}>
                    {ago(d.updated_at)}
                  </td>
                  <td class="actions">
                    <a class="small button" href={href("definitions", d.job_type, "run")}>
                      Run…
                    </a>
                    <button
                      type="button"
                      class="small"
                      disabled={!writer}
                      onClick={() => void toggle(d)}
                    >
                      {d.paused ? "Resume" : "Pause"}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
