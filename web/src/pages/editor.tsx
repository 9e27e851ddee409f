/**
 * Write a definition: YAML in a plain textarea with line numbers. Saving (or running
 * without saving) sends it to the server's parser; a refusal is shown at its line: the
 * line number is marked, the message sits under the editor, and the caret goes there.
 */
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, call } from "../api.ts";
import { ErrorBox } from "../components/common.tsx";
import { href, navigate } from "../router.ts";
import { canWrite } from "../session.ts";
import type { JobRequestView, SessionView, StoredDefinitionView } from "../types.ts";

const STARTER = `job_type: my-job
description: what this job does
job_variables:
  Name: world
tasks:
- task_type: hello
  script:
    - echo "hello, {{.Name}}"
  on_completed: [bye]
- task_type: bye
  script:
    - echo "bye"
`;

interface Problem {
  line?: number;
  column?: number;
  message: string;
  code: string;
}

export function EditorPage({
  session,
  from,
}: {
  session: SessionView;
  from?: string;
}): JSX.Element {
  const [text, setText] = useState(from ? "" : STARTER);
  const [problem, setProblem] = useState<Problem | undefined>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!from) return;
    call<string>(`/api/job-definitions/${encodeURIComponent(from)}?format=yaml`, {
      text: true,
    }).then(setText, setError);
  }, [from]);

  const goTo = (line: number, column = 1) => {
    const el = area.current;
    if (!el) return;
    const lines = el.value.split("\n");
    let pos = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i]!.length + 1;
    pos += Math.max(0, column - 1);
    el.focus();
    el.setSelectionRange(pos, pos);
    const lineHeight = parseFloat(getComputedStyle(el).lineHeight) || 20;
    el.scrollTop = Math.max(0, (line - 3) * lineHeight);
  };

  const send = async (mode: "save" | "run") => {
    setBusy(true);
    setProblem(undefined);
    setError(undefined);
    try {
      if (mode === "save") {
        const saved = await call<StoredDefinitionView>("/api/job-definitions", {
          body: text,
          contentType: "application/yaml",
        });
        navigate(href("definitions", saved.job_type));
      } else {
        const job = await call<JobRequestView>("/api/job-requests", { json: { definition: text } });
        navigate(href("jobs", job.id));
      }
    } catch (e) {
      if (e instanceof ApiError && e.code === "COLONY_INVALID_DEFINITION") {
        const line = typeof e.details?.line === "number" ? e.details.line : undefined;
        const column = typeof e.details?.column === "number" ? e.details.column : undefined;
        setProblem({ line, column, message: e.message, code: e.code });
        if (line) setTimeout(() => goTo(line, column), 0);
      } else setError(e);
    } finally {
      setBusy(false);
    }
  };

  const count = text.split("\n").length;
  const writer = canWrite(session);
  return (
    <section aria-labelledby="editor-title">
      <div class="page-head">
        <h1 id="editor-title">
          <a href={href("definitions")} class="plain muted">
            Definitions /
          </a>{" "}
          {from ? `edit ${from}` : "new"}
        </h1>
      </div>
      <p class="muted">
        YAML as in <code>docs/jobs.md</code>. Saving a type that exists makes its next version.
      </p>
      <div class={`editor${problem ? " has-problem" : ""}`}>
        <div class="editor-gutter" ref={gutter} aria-hidden="true">
          {Array.from({ length: count }, (_, i) => (
            <div
              key={i}
              class={problem?.line === i + 1 ? "bad" : undefined}
              data-error-line={problem?.line === i + 1 ? i + 1 : undefined}
            >
              {i + 1}
            </div>
          ))}
        </div>
        <textarea
          ref={area}
          spellcheck={false}
          autocapitalize="off"
          aria-label="definition YAML"
          aria-invalid={problem ? "true" : undefined}
          aria-describedby={problem ? "problem" : undefined}
          value={text}
          wrap="off"
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          onScroll={(e) => {
            if (gutter.current)
              gutter.current.scrollTop = (e.target as HTMLTextAreaElement).scrollTop;
          }}
          onKeyDown={(e) => {
            // Tab indents (two spaces) instead of leaving; Escape then Tab leaves.
            if (e.key === "Tab" && !e.shiftKey && !(e.target as HTMLElement).dataset.escaped) {
              e.preventDefault();
              const el = e.target as HTMLTextAreaElement;
              el.setRangeText("  ", el.selectionStart, el.selectionEnd, "end");
              setText(el.value);
            } else if (e.key === "Escape") (e.target as HTMLElement).dataset.escaped = "1";
            else delete (e.target as HTMLElement).dataset.escaped;
          }}
        />
      </div>
      {problem ? (
        <div class="error problem" id="problem" role="alert" data-problem-line={problem.line}>
          {problem.line ? (
            <button type="button" class="small" onClick={() => goTo(problem.line!, problem.column)}>
              Go to line {problem.line}
            </button>
          ) : null}{" "}
          {problem.message}
        </div>
      ) : null}
      <ErrorBox error={error} />
      <div class="row">
        <span class="muted">
          {writer
            ? "Tab indents; Esc then Tab leaves the editor."
            : `Your role (${session.role}) cannot save.`}
        </span>
        <span class="spacer" />
        <button type="button" disabled={busy || !writer} onClick={() => void send("run")}>
          Run once without saving
        </button>
        <button
          type="button"
          class="primary"
          disabled={busy || !writer}
          onClick={() => void send("save")}
        >
          Save definition
        </button>
      </div>
    </section>
  );
}
