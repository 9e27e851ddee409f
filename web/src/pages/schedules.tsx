/** Schedules: cron-triggered jobs with their next firing times; pause and resume. */
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call } from "../api.ts";
import { Empty, ErrorBox, Loading, Unavailable, useTicker } from "../components/common.tsx";
import { ago, clock } from "../format.ts";
import { routeMissing, useLoad, useThrottle } from "../hooks.ts";
import { useLive } from "../live.ts";
import { href } from "../router.ts";
import { itemsOf, list, pick, text } from "../resource.ts";
import { canWrite } from "../session.ts";
import type { SessionView } from "../types.ts";

export function SchedulesPage({ session }: { session: SessionView }): JSX.Element {
  const schedules = useLoad((signal) => call<unknown>("/api/schedules", { signal }), "schedules");
  const reload = useThrottle(schedules.reload, 500);
  useLive(["schedule", "job:state"], reload, schedules.reload);
  const now = useTicker(true, 1000);
  // Next firing times move as schedules fire: read them again now and then.
  useEffect(() => {
    const t = setInterval(schedules.reload, 30_000);
    return () => clearInterval(t);
  }, [schedules.reload]);
  const [error, setError] = useState<unknown>();
  if (routeMissing(schedules.error)) {
    return (
      <section>
        <h1>Schedules</h1>
        <Unavailable what="Schedules" route="/api/schedules" />
      </section>
    );
  }
  const items = itemsOf(schedules.data);
  const writer = canWrite(session);
  const toggle = async (id: string, paused: boolean) => {
    setError(undefined);
    try {
      await call(`/api/schedules/${encodeURIComponent(id)}/${paused ? "resume" : "pause"}`, {
        method: "POST",
      });
      schedules.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby="schedules-title">
      <div class="page-head">
        <h1 id="schedules-title">Schedules</h1>
      </div>
      <ErrorBox error={schedules.error ?? error} />
      {!schedules.data ? (
        schedules.error ? null : (
          <Loading />
        )
      ) : items.length === 0 ? (
        <Empty>
          No schedules. A definition with <code>cron_trigger</code> makes one.
        </Empty>
      ) : (
        <div class="table-wrap">
          <table class="list" data-testid="schedules">
            <thead>
              <tr>
                <th scope="col">Schedule</th>
                <th scope="col">Cron</th>
                <th scope="col">Next</th>
                <th scope="col" class="wide">
                  Last
                </th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((s, i) => {
                const id = text(s, "id", "name", "job_type");
                const type = text(s, "job_type");
                const paused = pick(s, "paused") === true || pick(s, "enabled") === false;
                const nextList = list(s, "next_runs", "next_fire_times");
                const next =
                  text(s, "next_run_at", "next_fire_at", "next_at", "next") || nextList[0] || "";
                return (
                  <tr key={id || i} data-row data-schedule={id}>
                    <td>
                      {type ? <a href={href("definitions", type)}>{id}</a> : id}
                      {paused ? <span class="badge s-PAUSED">paused</span> : null}
                    </td>
                    <td>
                      <code>{text(s, "cron_trigger", "cron", "expression")}</code>
                      {text(s, "timezone") ? (
                        <span class="muted small"> {text(s, "timezone")}</span>
                      ) : null}
                    </td>
                    <td title={nextList.join("\n") || next}>
                      {paused ? (
                        <span class="muted">paused</span>
                      ) : next ? (
                        `${clock(next)} (${ago(next, now)})`
                      ) : (
                        ""
                      )}
                    </td>
                    <td class="wide">
                      {ago(text(s, "last_run_at", "last_fired_at", "last") || undefined, now)}
                      {typeof pick(s, "last_job_request_id") === "number" ? (
                        <>
                          {" "}
                          <a href={href("jobs", pick(s, "last_job_request_id") as number)}>
                            #{String(pick(s, "last_job_request_id"))}
                          </a>
                        </>
                      ) : null}
                    </td>
                    <td class="actions">
                      <button
                        type="button"
                        class="small"
                        disabled={!writer}
                        onClick={() => void toggle(id, paused)}
                      >
                        {paused ? "Resume" : "Pause"}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
