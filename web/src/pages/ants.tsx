/**
 * Ants: the workers connected to this server and the tasks waiting for one, live (ant:*
 * events; task:state and job:state too, as a task or a job left PENDING for want of an
 * ant starts or stops waiting without any ant event).
 */
import type { JSX } from "preact";
import { call } from "../api.ts";
import { Empty, ErrorBox, Loading, Unavailable, useTicker } from "../components/common.tsx";
import { ago, waitingWhy } from "../format.ts";
import { routeMissing, useLoad, useThrottle } from "../hooks.ts";
import { useLive } from "../live.ts";
import { href } from "../router.ts";
import { itemsOf, list, num, pick, text, type Row } from "../resource.ts";

export function AntsPage(): JSX.Element {
  const ants = useLoad((signal) => call<unknown>("/api/ants", { signal }), "ants");
  const reload = useThrottle(ants.reload, 500);
  useLive(["ant", "task:state", "job:state"], reload, ants.reload);
  const now = useTicker(true, 5000);
  if (routeMissing(ants.error)) {
    return (
      <section>
        <h1>Ants</h1>
        <Unavailable what="Ants" route="/api/ants" />
      </section>
    );
  }
  const items = itemsOf(ants.data);
  const waiting =
    ants.data && typeof ants.data === "object" && Array.isArray((ants.data as Row).waiting)
      ? ((ants.data as Row).waiting as Row[])
      : [];
  const waitingTotal = (ants.data ? num(ants.data as Row, "waiting_total") : undefined) ?? 0;
  return (
    <section aria-labelledby="ants-title">
      <div class="page-head">
        <h1 id="ants-title">Ants</h1>
      </div>
      <ErrorBox error={ants.error} />
      {!ants.data ? (
        ants.error ? null : (
          <Loading />
        )
      ) : items.length === 0 ? (
        <Empty>
          No ants connected. Start one with <code>colony ant --server URL --token T</code>.
        </Empty>
      ) : (
        <div class="table-wrap">
          <table class="list" data-testid="ants">
            <thead>
              <tr>
                <th scope="col">Ant</th>
                <th scope="col">Tags</th>
                <th scope="col" class="wide">
                  Methods
                </th>
                <th scope="col">Load</th>
                <th scope="col">Last seen</th>
                <th scope="col" class="wide">
                  State
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((a, i) => {
                const id = text(a, "ant_id", "id", "name");
                const load =
                  num(a, "load", "allocated", "running", "current_load", "in_flight") ?? 0;
                const cap = num(a, "max_capacity", "capacity", "max");
                const seen = text(a, "last_seen_at", "last_seen", "last_heartbeat_at");
                const pct = cap ? Math.min(100, Math.round((load / cap) * 100)) : 0;
                return (
                  <tr key={id || i} data-row data-ant={id}>
                    <td>
                      <code>{id}</code>{" "}
                      {text(a, "kind") === "builtin" ? <span class="tag">built-in</span> : null}
                      {pick(a, "agent") === true ? <span class="tag">agent</span> : null}
                      {text(a, "address", "remote_address", "host") ? (
                        <div class="muted small">
                          {text(a, "address", "remote_address", "host")}
                        </div>
                      ) : null}
                    </td>
                    <td>
                      {list(a, "tags").map((t) => (
                        <span key={t} class="tag">
                          {t}
                        </span>
                      ))}
                    </td>
                    <td class="wide wrap">{list(a, "methods").join(", ")}</td>
                    <td>
                      <span
                        class="meter"
                        role="meter"
                        aria-valuenow={load}
                        aria-valuemin={0}
                        aria-valuemax={cap ?? load}
                      >
                        <span class="meter-fill" style={{ width: `${pct}%` }} />
                      </span>{" "}
                      {load}
                      {cap !== undefined ? ` / ${cap}` : ""}
                    </td>
                    <td title={seen}>{seen ? ago(seen, now) : <span class="muted">–</span>}</td>
                    <td class="wide">
                      <span
                        class={`badge ${text(a, "state", "status") === "connected" ? "s-COMPLETED" : "s-CANCELLED"}`}
                      >
                        {text(a, "state", "status")}
                      </span>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {waiting.length ? (
        <>
          <h2>Waiting for an ant ({Math.max(waitingTotal, waiting.length)})</h2>
          <div class="table-wrap">
            <table class="list" data-testid="waiting">
              <thead>
                <tr>
                  <th scope="col">Job</th>
                  <th scope="col">Task</th>
                  <th scope="col">Method</th>
                  <th scope="col">Tags</th>
                  <th scope="col">Since</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {waiting.map((w) => (
                  <tr key={text(w, "execution_id") || `job-${num(w, "job_request_id")}`}>
                    <td>
                      <a href={href("jobs", num(w, "job_request_id") ?? "")}>
                        #{num(w, "job_request_id")}
                      </a>
                    </td>
                    <td>
                      {text(w, "task_type")}{" "}
                      {text(w, "execution_id") ? (
                        <code class="muted">{text(w, "execution_id")}</code>
                      ) : null}
                    </td>
                    <td>{text(w, "method")}</td>
                    <td>{list(w, "tags").join(", ")}</td>
                    <td>{ago(text(w, "since") || undefined, now)}</td>
                    <td>{waitingWhy(text(w, "reason"), w["left_pending"] === true)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          {waitingTotal > waiting.length ? (
            <p class="muted">
              The oldest {waiting.length} are shown; {waitingTotal - waiting.length} more wait.
            </p>
          ) : null}
        </>
      ) : null}
    </section>
  );
}
