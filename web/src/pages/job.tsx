/**
 * One job request: its DAG (nodes recoloured by task:state events as they arrive),
 * every task's state, attempts, exit code, duration and outputs, the live output of the
 * selected task, and cancel / restart.
 */
import { Component, type JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call } from "../api.ts";
import { canWrite } from "../session.ts";
import { ErrorBox, Loading, StateBadge, useNarrow, useTicker } from "../components/common.tsx";
import { Dag, type TaskSummary } from "../components/dag.tsx";
import { LogView } from "../components/log-view.tsx";
import { bytes, clock, show, span } from "../format.ts";
import { routeMissing, useLoad, useThrottle } from "../hooks.ts";
import { pick, text, type Row } from "../resource.ts";
import { useLive } from "../live.ts";
import { href, navigate } from "../router.ts";
import {
  FINAL,
  type JobDefinitionView,
  type JobRequestView,
  type JobStateEvent,
  type SessionView,
  type TaskExecutionView,
  type TaskStateEvent,
} from "../types.ts";

/** The latest execution of each task in the job's current attempt, and how many tries it took. */
function summarise(
  job: JobRequestView,
): Record<string, TaskSummary & { latest?: TaskExecutionView }> {
  const out: Record<string, TaskSummary & { latest?: TaskExecutionView }> = {};
  for (const t of job.tasks ?? []) {
    if (t.job_attempt !== job.attempt) continue;
    const s = (out[t.task_type] ??= { attempts: 0 });
    s.attempts++;
    if (!s.latest || t.attempt >= s.latest.attempt) {
      s.latest = t;
      s.state = t.state;
    }
  }
  return out;
}

/** A task:state event applied to the job as shown (the refetch that follows reconciles). */
function applyTaskEvent(job: JobRequestView, e: TaskStateEvent): JobRequestView {
  const tasks = [...(job.tasks ?? [])];
  const i = tasks.findIndex((t) => t.id === e.execution_id);
  const started = e.state === "EXECUTING" || e.state === "STARTED";
  if (i >= 0) {
    const t = tasks[i]!;
    tasks[i] = {
      ...t,
      state: e.state,
      exit_code: e.exit_code ?? t.exit_code,
      error_message: e.error ?? t.error_message,
      started_at: t.started_at ?? (started ? e.at : null),
      ended_at: FINAL.has(e.state) ? (t.ended_at ?? e.at) : t.ended_at,
    };
  } else {
    tasks.push({
      id: e.execution_id,
      job_request_id: e.job_request_id,
      task_type: e.task_type,
      method: e.method ?? "",
      attempt: e.attempt,
      job_attempt: job.attempt,
      state: e.state,
      exit_code: e.exit_code ?? null,
      error_code: null,
      error_message: e.error ?? null,
      context: {},
      created_at: e.at,
      started_at: started ? e.at : null,
      ended_at: FINAL.has(e.state) ? e.at : null,
    });
  }
  return { ...job, tasks };
}

interface TaskRowProps {
  jobId: number;
  task: string;
  state: string | undefined;
  attempts: number;
  exit: number | null;
  startedAt: string | null;
  endedAt: string | null;
  now: number;
  selected: boolean;
  select: (task: string) => void;
}

/** A row of the tasks table; redrawn only when what it shows changes. */
class TaskRow extends Component<TaskRowProps> {
  override shouldComponentUpdate(next: TaskRowProps): boolean {
    const p = this.props as unknown as Record<string, unknown>;
    const n = next as unknown as Record<string, unknown>;
    for (const key in n) if (key !== "select" && p[key] !== n[key]) return true;
    return false;
  }

  override render(): JSX.Element {
    const { jobId, task, state, attempts, exit, startedAt, endedAt, now, selected } = this.props;
    return (
      <tr
        data-row
        data-task={task}
        data-state={state ?? ""}
        class={selected ? "selected" : undefined}
      >
        <td>
          <a
            class="row-link"
            href={href("jobs", jobId, { task })}
            aria-current={selected ? "true" : undefined}
            onClick={(e) => {
              e.preventDefault();
              this.props.select(task);
            }}
          >
            {task}
          </a>
        </td>
        <td>{state ? <StateBadge state={state} /> : <span class="muted">–</span>}</td>
        <td>{attempts}</td>
        <td data-exit>{exit ?? ""}</td>
        <td>{span(startedAt, endedAt, now || Date.now())}</td>
      </tr>
    );
  }
}

/** Bytes a task execution has written so far (its unit's stdout_size). */
async function unitSize(id: string): Promise<number | undefined> {
  const unit = await call<{ stdout_size?: number }>(`/api/units/${encodeURIComponent(id)}`);
  return unit.stdout_size;
}

function Artifacts({ items }: { items: Row[] }): JSX.Element | null {
  if (items.length === 0) return null;
  return (
    <div class="artifacts">
      <h3>Artifacts</h3>
      <ul>
        {items.map((a) => (
          <li key={text(a, "id")}>
            <a
              href={`/api/artifacts/${encodeURIComponent(text(a, "id"))}/download`}
              download={text(a, "name")}
            >
              {text(a, "name")}
            </a>{" "}
            <span class="muted">{bytes(Number(pick(a, "size") ?? 0))}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function ConfirmButton({
  label,
  confirm,
  onConfirm,
  disabled,
  danger,
}: {
  label: string;
  confirm: string;
  onConfirm: () => void;
  disabled?: boolean;
  danger?: boolean;
}): JSX.Element {
  const [asking, setAsking] = useState(false);
  useEffect(() => {
    if (!asking) return;
    const t = setTimeout(() => setAsking(false), 4000);
    return () => clearTimeout(t);
  }, [asking]);
  return (
    <button
      type="button"
      class={danger ? "danger" : undefined}
      disabled={disabled}
      onClick={() => {
        if (asking) {
          setAsking(false);
          onConfirm();
        } else setAsking(true);
      }}
    >
      {asking ? confirm : label}
    </button>
  );
}

export function JobPage({
  id,
  task,
  session,
}: {
  id: number;
  task?: string;
  session: SessionView;
}): JSX.Element {
  const job = useLoad(
    (signal) => call<JobRequestView>(`/api/job-requests/${id}`, { signal }),
    `job-${id}`,
  );
  const def = useLoad(
    (signal) => call<JobDefinitionView>(`/api/job-requests/${id}/definition`, { signal }),
    `def-${id}`,
  );
  // Files the tasks stored (a server without artifacts answers 404: none shown).
  const artifacts = useLoad(
    (signal) =>
      call<{ items: Row[] }>(`/api/artifacts?job_request_id=${id}&limit=500`, { signal }).catch(
        (e: unknown) => {
          if (routeMissing(e)) return { items: [] as Row[] };
          throw e;
        },
      ),
    `artifacts-${id}`,
  );
  const [actionError, setActionError] = useState<unknown>();
  const [execution, setExecution] = useState<string | undefined>();
  const narrow = useNarrow();
  const refetch = useThrottle(() => {
    job.reload();
    artifacts.reload();
  }, 500);

  useLive(
    ["task:state", "job:state"],
    (type, data) => {
      if (type === "task:state") {
        const e = data as unknown as TaskStateEvent;
        if (e.job_request_id !== id) return;
        job.setData((j) => (j ? applyTaskEvent(j, e) : j));
      } else {
        const e = data as unknown as JobStateEvent;
        if (e.id !== id) return;
        job.setData((j) =>
          j
            ? {
                ...j,
                state: e.state,
                attempt: e.attempt,
                started_at: j.started_at ?? (e.state === "EXECUTING" ? e.at : null),
                ended_at: FINAL.has(e.state) ? (j.ended_at ?? e.at) : null,
              }
            : j,
        );
      }
      refetch();
    },
    job.reload,
  );

  const j = job.data;
  const now = useTicker(!!j && !FINAL.has(j.state));
  if (!j) return job.error ? <ErrorBox error={job.error} /> : <Loading />;

  const summary = summarise(j);
  const selected = task ?? j.task_types[0];
  const executions = (j.tasks ?? []).filter((t) => t.task_type === selected);
  const shown =
    executions.find((t) => t.id === execution) ??
    summary[selected ?? ""]?.latest ??
    executions.at(-1);
  const select = (t: string) => {
    setExecution(undefined);
    navigate(href("jobs", id, { task: t }), true);
  };
  const act = async (action: "cancel" | "restart") => {
    setActionError(undefined);
    try {
      const updated = await call<JobRequestView>(`/api/job-requests/${id}/${action}`, {
        method: "POST",
      });
      job.setData((old) => (old ? { ...old, ...updated, tasks: old.tasks } : old));
      job.reload();
    } catch (e) {
      setActionError(e);
    }
  };
  const writer = canWrite(session);
  const params = Object.entries(j.params);

  return (
    <section aria-labelledby="job-title" data-job={j.id} data-state={j.state}>
      <div class="page-head">
        <h1 id="job-title">
          <a href={href("jobs")} class="plain muted">
            Jobs /
          </a>{" "}
          #{j.id} {j.job_type}
        </h1>
        <StateBadge state={j.state} />
        <span class="spacer" />
        {!FINAL.has(j.state) ? (
          <ConfirmButton
            label="Cancel job"
            confirm="Confirm cancel"
            danger
            disabled={!writer}
            onConfirm={() => void act("cancel")}
          />
        ) : null}
        {j.state === "FAILED" || j.state === "CANCELLED" ? (
          <button type="button" disabled={!writer} onClick={() => void act("restart")}>
            Restart
          </button>
        ) : null}
      </div>
      <ErrorBox error={actionError} />
      <dl class="facts">
        <div>
          <dt>Type</dt>
          <dd>
            <a href={href("definitions", j.job_type)}>{j.job_type}</a>
          </dd>
        </div>
        <div>
          <dt>Submitted</dt>
          <dd title={j.created_at}>
            {clock(j.created_at)}
            {j.submitted_by ? ` by ${j.submitted_by}` : ""}
          </dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>
            {j.started_at ? (
              clock(j.started_at)
            ) : (
              <span class="muted">scheduled {clock(j.scheduled_at)}</span>
            )}
          </dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd data-duration>{span(j.started_at, j.ended_at, now)}</dd>
        </div>
        <div>
          <dt>Attempt</dt>
          <dd>{j.attempt}</dd>
        </div>
        {params.length ? (
          <div>
            <dt>Params</dt>
            <dd>
              {params.map(([k, v]) => (
                <code key={k} class="kv">
                  {k}={show(v)}
                </code>
              ))}
            </dd>
          </div>
        ) : null}
      </dl>
      {j.error_message ? (
        // A PENDING job with an error code waits (no ant serves its first task yet).
        <div class={j.state === "PENDING" ? "warn" : "error"} role="status">
          <strong>{j.error_code}</strong> {j.error_message}
        </div>
      ) : null}

      <h2 class="sr-only">Task graph</h2>
      {def.data ? (
        <Dag
          definition={def.data}
          tasks={summary}
          selected={selected}
          onSelect={select}
          vertical={narrow}
          jobEnded={FINAL.has(j.state)}
        />
      ) : (
        <ErrorBox error={def.error} />
      )}

      <div class="split">
        <div class="tasks-pane">
          <h2>Tasks</h2>
          <div class="table-wrap">
            <table class="list tasks" data-testid="tasks">
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">State</th>
                  <th scope="col">Tries</th>
                  <th scope="col">Exit</th>
                  <th scope="col">Time</th>
                </tr>
              </thead>
              <tbody>
                {j.task_types.map((t) => {
                  const l = summary[t]?.latest;
                  return (
                    <TaskRow
                      key={t}
                      jobId={id}
                      task={t}
                      state={summary[t]?.state}
                      attempts={summary[t]?.attempts ?? 0}
                      exit={l?.exit_code ?? null}
                      startedAt={l?.started_at ?? null}
                      endedAt={l?.ended_at ?? null}
                      // only running rows need the clock
                      now={l && !l.ended_at ? now : 0}
                      selected={t === selected}
                      select={select}
                    />
                  );
                })}
              </tbody>
            </table>
          </div>
        </div>
        <div class="output-pane">
          <div class="output-head">
            <h2>
              Output of <code>{selected}</code>
            </h2>
            {executions.length > 1 ? (
              <select
                aria-label="execution"
                value={shown?.id}
                onChange={(e) => setExecution((e.target as HTMLSelectElement).value)}
              >
                {executions.map((t) => (
                  <option key={t.id} value={t.id}>
                    run {t.job_attempt + 1}, try {t.attempt + 1}: {t.state.toLowerCase()}
                  </option>
                ))}
              </select>
            ) : null}
          </div>
          {shown ? (
            <>
              <dl class="facts small">
                <div>
                  <dt>Execution</dt>
                  <dd>
                    <code>{shown.id}</code> ({shown.method || "?"})
                  </dd>
                </div>
                <div>
                  <dt>State</dt>
                  <dd>
                    <StateBadge state={shown.state} />
                  </dd>
                </div>
                {shown.exit_code !== null ? (
                  <div>
                    <dt>Exit code</dt>
                    <dd>{shown.exit_code}</dd>
                  </div>
                ) : null}
                <div>
                  <dt>Duration</dt>
                  <dd>{span(shown.started_at, shown.ended_at, now)}</dd>
                </div>
                {Object.keys(shown.context).length ? (
                  <div>
                    <dt>Outputs</dt>
                    <dd>
                      {Object.entries(shown.context).map(([k, v]) => (
                        <code key={k} class="kv">
                          {k}={show(v)}
                        </code>
                      ))}
                    </dd>
                  </div>
                ) : null}
              </dl>
              {shown.error_message ? (
                <div class="error">
                  <strong>{shown.error_code}</strong> {shown.error_message}
                </div>
              ) : null}
              <Artifacts
                items={(artifacts.data?.items ?? []).filter(
                  (a) => a.task_execution_id === shown.id,
                )}
              />
              <LogView
                key={shown.id}
                src={`/api/task-executions/${encodeURIComponent(shown.id)}/output`}
                follow
                size={() => unitSize(shown.id)}
                download={`/api/task-executions/${encodeURIComponent(shown.id)}/output`}
              />
            </>
          ) : (
            <p class="muted">
              {FINAL.has(j.state) ? "This task did not run." : "This task has not started yet."}
            </p>
          )}
        </div>
      </div>
    </section>
  );
}
