/**
 * The dashboard shell: who is logged in, the navigation, keyboard shortcuts, and which
 * page the hash route shows. One live event stream is opened per tab once logged in.
 */
import type { JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { call, onSessionEnded } from "./api.ts";
import { Loading } from "./components/common.tsx";
import { chord } from "./keys.ts";
import { startLive, stopLive, useLiveStatus } from "./live.ts";
import { AntsPage } from "./pages/ants.tsx";
import { DefinitionPage } from "./pages/definition.tsx";
import { DefinitionsPage } from "./pages/definitions.tsx";
import { EditorPage } from "./pages/editor.tsx";
import { JobPage } from "./pages/job.tsx";
import { JobsPage } from "./pages/jobs.tsx";
import { LoginPage } from "./pages/login.tsx";
import { SchedulesPage } from "./pages/schedules.tsx";
import { UnitsPage } from "./pages/units.tsx";
import { href, navigate, useRoute, type Route } from "./router.ts";
import type { SessionView } from "./types.ts";

const NAV = [
  ["jobs", "Jobs", "j"],
  ["definitions", "Definitions", "d"],
  ["ants", "Ants", "a"],
  ["units", "Units", "u"],
  ["schedules", "Schedules", "s"],
] as const;

function Page({ route, session }: { route: Route; session: SessionView }): JSX.Element {
  const [section, id, sub] = route.path;
  switch (section) {
    case "jobs":
      return id ? (
        <JobPage id={Number(id)} task={route.query.get("task") ?? undefined} session={session} />
      ) : (
        <JobsPage query={route.query} />
      );
    case "definitions":
      if (id === "new")
        return <EditorPage session={session} from={route.query.get("from") ?? undefined} />;
      return id ? (
        <DefinitionPage jobType={id} session={session} tab={sub} />
      ) : (
        <DefinitionsPage session={session} />
      );
    case "ants":
      return <AntsPage />;
    case "units":
      return <UnitsPage session={session} />;
    case "schedules":
      return <SchedulesPage session={session} />;
    default:
      return <JobsPage query={route.query} />;
  }
}

function isTyping(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

function Shortcuts({ onClose }: { onClose: () => void }): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} class="help" onClose={onClose} aria-label="keyboard shortcuts">
      <h2>Keyboard</h2>
      <dl>
        {NAV.map(([path, label, key]) => (
          <div key={path}>
            <dt>
              <kbd>g</kbd> <kbd>{key}</kbd>
            </dt>
            <dd>{label}</dd>
          </div>
        ))}
        <div>
          <dt>
            <kbd>j</kbd> <kbd>k</kbd>
          </dt>
          <dd>next / previous row in a list; Enter opens it</dd>
        </div>
        <div>
          <dt>
            <kbd>/</kbd>
          </dt>
          <dd>the page's filter</dd>
        </div>
        <div>
          <dt>Tab, arrows</dt>
          <dd>move between tasks of a graph; Enter shows the task</dd>
        </div>
        <div>
          <dt>
            <kbd>?</kbd>
          </dt>
          <dd>this help</dd>
        </div>
      </dl>
      <form method="dialog">
        <button autofocus>Close</button>
      </form>
    </dialog>
  );
}

export function App(): JSX.Element {
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [help, setHelp] = useState(false);
  const route = useRoute();
  const live = useLiveStatus();

  useEffect(() => {
    call<SessionView>("/api/session").then(setSession, () => setSession(null));
    if (location.hash.replace(/^#\/?/, "").split("/")[0] !== "login") startLive();
    return onSessionEnded(() => {
      stopLive();
      setSession(null);
    });
  }, []);
  useEffect(() => {
    if (session) startLive();
  }, [session]);

  // g + letter: go to a page; ?: help; /: the page's filter.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
      if (e.key === "?") {
        setHelp(true);
        return;
      }
      if (e.key === "/") {
        const search = document.querySelector<HTMLElement>("[data-search]");
        if (search) {
          e.preventDefault();
          search.focus();
        }
        return;
      }
      if (chord(e.key)) {
        const target = NAV.find(([, , key]) => key === e.key);
        if (target) navigate(href(target[0]));
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  if (session === undefined && route.path[0] === "login") return <Loading />;
  if (session === null || route.path[0] === "login") {
    if (session && route.path[0] === "login") navigate(href("jobs"), true);
    return (
      <LoginPage
        expired={route.path[1] === "expired"}
        onLogin={(s) => {
          setSession(s);
          if (route.path[0] === "login" || !route.path[0]) navigate(href("jobs"), true);
        }}
      />
    );
  }

  const logout = async () => {
    try {
      await call("/api/session", { method: "DELETE" });
    } finally {
      stopLive();
      setSession(null);
      navigate(href("login"), true);
    }
  };
  const section = route.path[0] ?? "jobs";
  // While /api/session answers, the page loads its data already (one round trip less on
  // a first load); it renders as a reader until the real role is known.
  const me: SessionView = session ?? {
    name: "",
    role: "reader",
    auth_enabled: true,
    via: "",
    csrf_token: null,
  };
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => {
          e.preventDefault();
          document.getElementById("main")?.focus();
        }}
      >
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href("jobs")} aria-label="colony: jobs">
          <span class="logo" aria-hidden="true" />
          colony
        </a>
        <nav aria-label="main">
          {NAV.map(([path, label]) => (
            <a
              key={path}
              href={href(path)}
              aria-current={section === path ? "page" : undefined}
              class={section === path ? "active" : undefined}
            >
              {label}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <span class={`live live-${live}`} title={`live events: ${live}`} data-live={live}>
          <span class="dot" aria-hidden="true" />
          <span class="live-text">
            {live === "live" ? "live" : live === "connecting" ? "connecting" : "offline"}
          </span>
        </span>
        {session ? (
          <span class="who" title={`role: ${session.role}`}>
            {session.name} <span class="muted">({session.role})</span>
          </span>
        ) : null}
        <button
          type="button"
          class="small"
          onClick={() => setHelp(true)}
          aria-label="keyboard shortcuts"
        >
          ?
        </button>
        {session?.auth_enabled ? (
          <button type="button" class="small" onClick={() => void logout()}>
            Log out
          </button>
        ) : null}
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} session={me} />
      </main>
      {help ? <Shortcuts onClose={() => setHelp(false)} /> : null}
    </>
  );
}
