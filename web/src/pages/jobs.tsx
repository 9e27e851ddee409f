/**
 * Jobs: the job requests, newest first, filtered by state and type, paged by cursor.
 * Live: a state change shows at once in its row (from the job:state event); new jobs
 * and timestamps come from a refetch of the page, at most once a second.
 */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { call } from "../api.ts";
import { Empty, ErrorBox, Loading, StateBadge, useTicker } from "../components/common.tsx";
import { ago, clock, span } from "../format.ts";
import { useLoad, useRowKeys, useThrottle } from "../hooks.ts";
import { useLive } from "../live.ts";
import { href, navigate } from "../router.ts";
import {
  FINAL,
  STATES,
  type JobRequestPageView,
  type JobStateEvent,
  type StoredDefinitionView,
} from "../types.ts";

const PAGE_SIZE = 25;

export function JobsPage({ query }: { query: URLSearchParams }): JSX.Element {
  const state = query.get("state") ?? "";
  const type = query.get("type") ?? "";
  const cursor = query.get("cursor") ?? "";
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state) params.set("state", state);
  if (type) params.set("job_type", type);
  if (cursor) params.set("cursor", cursor);
  const path = `/api/job-requests?${params.toString()}`;
  const page = useLoad((signal) => call<JobRequestPageView>(path, { signal }), path);
  // The type suggestions load when the filter is first used, not with the page.
  const [wantTypes, setWantTypes] = useState(false);
  const types = useLoad(
    (signal) =>
      wantTypes
        ? call<{ items: StoredDefinitionView[] }>("/api/job-definitions", { signal })
        : Promise.resolve({ items: [] as StoredDefinitionView[] }),
    `types-${wantTypes}`,
  );
  useRowKeys();

  const refetch = useThrottle(page.reload, 1000);
  useLive(
    ["job"],
    (_type, data) => {
      const e = data as unknown as JobStateEvent;
      page.setData((d) =>
        d
          ? {
              ...d,
              items: d.items.map((j) =>
                j.id === e.id
                  ? {
                      ...j,
                      state: e.state,
                      attempt: e.attempt,
                      // A new attempt (retry, restart) has its own start.
                      started_at:
                        (e.attempt === j.attempt ? j.started_at : null) ??
                        (e.state === "EXECUTING" ? e.at : null),
                      ended_at: FINAL.has(e.state) ? (j.ended_at ?? e.at) : null,
                    }
                  : j,
              ),
            }
          : d,
      );
      refetch();
    },
    page.reload,
  );
  const running = page.data?.items.some((j) => !FINAL.has(j.state)) ?? false;
  const now = useTicker(running);

  const setFilter = (key: string, value: string) => {
    const q = new URLSearchParams(query);
    if (value) q.set(key, value);
    else q.delete(key);
    q.delete("cursor");
    navigate("#/jobs" + (q.toString() ? `?${q.toString()}` : ""), true);
  };

  return (
    <section aria-labelledby="jobs-title">
      <div class="page-head">
        <h1 id="jobs-title">Jobs</h1>
        <a class="button" href={href("definitions")}>
          Submit a job…
        </a>
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          State{" "}
          <select
            value={state}
            onChange={(e) => setFilter("state", (e.target as HTMLSelectElement).value)}
            aria-label="filter by state"
          >
            <option value="">any</option>
            <option value="PENDING,READY,STARTED,EXECUTING,PAUSED">unfinished</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {s.toLowerCase()}
              </option>
            ))}
            <option value="FAILED,CANCELLED">failed or cancelled</option>
          </select>
        </label>
        <label>
          Type{" "}
          <input
            data-search
            list="job-types"
            value={type}
            placeholder="any type"
            aria-label="filter by job type"
            onFocus={() => setWantTypes(true)}
            onChange={(e) => setFilter("type", (e.target as HTMLInputElement).value.trim())}
          />
          <datalist id="job-types">
            {types.data?.items.map((d) => (
              <option key={d.job_type} value={d.job_type} />
            ))}
          </datalist>
        </label>
        {state || type ? (
          <a class="small button" href={href("jobs")}>
            Clear
          </a>
        ) : null}
      </form>
      <ErrorBox error={page.error} />
      {!page.data ? (
        page.error ? null : (
          <Loading />
        )
      ) : page.data.items.length === 0 ? (
        <Empty>
          No jobs{state || type ? " match these filters" : " yet"}.{" "}
          <a href={href("definitions")}>Submit one</a>.
        </Empty>
      ) : (
        <div class="table-wrap">
          <table class="list" data-testid="jobs">
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Type</th>
                <th scope="col">State</th>
                <th scope="col" class="wide">
                  By
                </th>
                <th scope="col">Started</th>
                <th scope="col">Duration</th>
                <th scope="col" class="wide">
                  Attempt
                </th>
              </tr>
            </thead>
            <tbody>
              {page.data.items.map((j) => (
                <tr key={j.id} data-row data-job={j.id} data-state={j.state}>
                  <td>
                    <a class="row-link" href={href("jobs", j.id)}>
                      {j.id}
                    </a>
                  </td>
                  <td>
                    <a href={href("jobs", { type: j.job_type })} class="plain">
                      {j.job_type}
                    </a>
                  </td>
                  <td>
                    <StateBadge state={j.state} />
                    {j.error_message ? (
                      <span class="err-hint" title={j.error_message}>
                        {" "}
                        ⚠
                      </span>
                    ) : null}
                  </td>
                  <td class="wide">{j.submitted_by ?? ""}</td>
                  <td title={j.started_at ?? `scheduled ${j.scheduled_at}`}>
                    {j.started_at ? (
                      clock(j.started_at)
                    ) : (
                      <span class="muted">{ago(j.scheduled_at, now)}</span>
                    )}
                  </td>
                  <td>{span(j.started_at, j.ended_at, now)}</td>
                  <td class="wide">{j.attempt}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="pager" aria-label="pages">
        {cursor ? (
          <a
            class="button"
            href={`#/jobs?${new URLSearchParams({ ...(state ? { state } : {}), ...(type ? { type } : {}) }).toString()}`}
          >
            ← Newest
          </a>
        ) : null}
        {page.data?.next_cursor ? (
          <a
            class="button"
            data-next
            href={`#/jobs?${new URLSearchParams({
              ...(state ? { state } : {}),
              ...(type ? { type } : {}),
              cursor: page.data.next_cursor,
            }).toString()}`}
          >
            Older →
          </a>
        ) : null}
      </nav>
    </section>
  );
}
