/**
 * Units: every unit of work (task executions, and work units submitted by receptor's
 * verbs) in receptor's states, live; the output of one; cancel and release.
 */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { ApiError, call } from "../api.ts";
import { Empty, ErrorBox, Loading, Unavailable } from "../components/common.tsx";
import { LogView } from "../components/log-view.tsx";
import { bytes } from "../format.ts";
import { routeMissing, useLoad, useRowKeys, useThrottle } from "../hooks.ts";
import { useLive } from "../live.ts";
import { href } from "../router.ts";
import { itemsOf, num, pick, text, type Row } from "../resource.ts";
import { canWrite } from "../session.ts";
import type { SessionView } from "../types.ts";

const ACTIVE = new Set(["Pending", "Running"]);

function unitId(u: Row): string {
  return text(u, "id", "unit_id", "unitid");
}

export function UnitsPage({ session }: { session: SessionView }): JSX.Element {
  const [cursor, setCursor] = useState<string | undefined>();
  // "" every unit, "work" work units only, "task" task runs only (every task run is a
  // unit, so a busy server's work units would otherwise be pages down).
  const [kind, setKind] = useState("");
  const path =
    `/api/units?limit=50${kind ? `&kind=${kind}` : ""}` +
    (cursor ? `&cursor=${encodeURIComponent(cursor)}` : "");
  const units = useLoad((signal) => call<unknown>(path, { signal }), path);
  const reload = useThrottle(units.reload, 1000);
  useLive(["unit", "task:state"], reload, units.reload);
  useRowKeys();
  const [selected, setSelected] = useState<string | undefined>();
  const [actionError, setActionError] = useState<unknown>();

  if (routeMissing(units.error)) {
    return (
      <section>
        <h1>Units</h1>
        <Unavailable what="Units" route="/api/units" />
      </section>
    );
  }
  const items = itemsOf(units.data);
  const next =
    units.data && typeof units.data === "object"
      ? (pick(units.data as Row, "next_cursor") as string | undefined)
      : undefined;
  const chosen = items.find((u) => unitId(u) === selected);
  const act = async (id: string, action: "cancel" | "release") => {
    setActionError(undefined);
    try {
      await call(`/api/units/${encodeURIComponent(id)}/${action}`, { method: "POST" });
      units.reload();
    } catch (e) {
      setActionError(
        e instanceof ApiError && e.routeMissing
          ? new Error(
              `${action} is not available on this server (no POST /api/units/{id}/${action})`,
            )
          : e,
      );
    }
  };
  const writer = canWrite(session);

  return (
    <section aria-labelledby="units-title">
      <div class="page-head">
        <h1 id="units-title">Units</h1>
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Show{" "}
          <select
            value={kind}
            onChange={(e) => {
              setKind((e.target as HTMLSelectElement).value);
              setCursor(undefined);
              setSelected(undefined);
            }}
            aria-label="filter by kind"
          >
            <option value="">all units</option>
            <option value="work">work units</option>
            <option value="task">task runs</option>
          </select>
        </label>
      </form>
      <ErrorBox error={units.error ?? actionError} />
      <div class={chosen ? "split units-split" : undefined}>
        <div>
          {!units.data ? (
            units.error ? null : (
              <Loading />
            )
          ) : items.length === 0 ? (
            <Empty>
              {kind === "work"
                ? "No work units yet: colony work submit TYPE (or POST /api/units) makes one."
                : kind === "task"
                  ? "No task runs yet: every task of a job that runs is one."
                  : "No units yet. Every task run is one; so is work submitted with colony work submit."}
            </Empty>
          ) : (
            <div class="table-wrap">
              <table class="list" data-testid="units">
                <thead>
                  <tr>
                    <th scope="col">Unit</th>
                    <th scope="col">Work</th>
                    <th scope="col">State</th>
                    <th scope="col" class="wide">
                      Detail
                    </th>
                    <th scope="col">Output</th>
                    <th scope="col">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((u) => {
                    const id = unitId(u);
                    const state = text(u, "state", "state_name", "StateName");
                    const job = num(u, "job_request_id");
                    // A task's unit is steered through its job (cancel the job, not the unit).
                    const task =
                      text(u, "kind") === "task" || (job !== undefined && !text(u, "kind"));
                    return (
                      <tr
                        key={id}
                        data-row
                        data-unit={id}
                        class={id === selected ? "selected" : undefined}
                      >
                        <td>
                          <a
                            class="row-link"
                            href={`#/units?unit=${encodeURIComponent(id)}`}
                            onClick={(e) => {
                              e.preventDefault();
                              setSelected(id);
                            }}
                          >
                            <code>{id}</code>
                          </a>
                        </td>
                        <td>
                          {task
                            ? text(u, "task_type") || text(u, "work_type")
                            : text(u, "work_type", "WorkType")}
                          {text(u, "node") ? (
                            <span class="muted small"> on {text(u, "node")}</span>
                          ) : null}
                          {job !== undefined ? (
                            <div class="small">
                              <a href={href("jobs", job, { task: text(u, "task_type") })}>
                                job #{job}
                              </a>
                            </div>
                          ) : null}
                        </td>
                        <td>
                          <span class={`badge u-${state}`}>{state}</span>
                        </td>
                        <td class="wide muted">{text(u, "detail", "Detail", "error_message")}</td>
                        <td>{bytes(num(u, "stdout_size", "StdoutSize") ?? 0)}</td>
                        <td class="actions">
                          {task ? (
                            <span class="muted small">via its job</span>
                          ) : (
                            <>
                              <button
                                type="button"
                                class="small"
                                disabled={!writer || !ACTIVE.has(state)}
                                onClick={() => void act(id, "cancel")}
                              >
                                Cancel
                              </button>
                              <button
                                type="button"
                                class="small"
                                disabled={!writer}
                                onClick={() => void act(id, "release")}
                              >
                                Release
                              </button>
                            </>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
          <nav class="pager" aria-label="pages">
            {cursor ? (
              <button type="button" onClick={() => setCursor(undefined)}>
                ← Newest
              </button>
            ) : null}
            {next ? (
              <button type="button" onClick={() => setCursor(next)}>
                Older →
              </button>
            ) : null}
          </nav>
        </div>
        {chosen ? (
          <div class="unit-output">
            <h2>
              Output of unit <code>{selected}</code>
            </h2>
            <LogView
              key={selected}
              src={`/api/units/${encodeURIComponent(selected!)}/stdout`}
              follow={ACTIVE.has(text(chosen, "state", "state_name"))}
              size={() => Promise.resolve(num(chosen, "stdout_size"))}
              download={`/api/units/${encodeURIComponent(selected!)}/stdout`}
            />
          </div>
        ) : null}
      </div>
    </section>
  );
}
