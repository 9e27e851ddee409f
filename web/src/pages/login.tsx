/** Log in with a token; it is traded for an HttpOnly session cookie and never stored by the page. */
import type { JSX } from "preact";
import { useState } from "preact/hooks";
import { call } from "../api.ts";
import { ErrorBox } from "../components/common.tsx";
import type { SessionView } from "../types.ts";

export function LoginPage({
  expired,
  onLogin,
}: {
  expired: boolean;
  onLogin: (s: SessionView) => void;
}): JSX.Element {
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const s = await call<SessionView>("/api/session", { json: { token: token.trim() } });
      setToken("");
      onLogin(s);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form onSubmit={(e) => void submit(e)} class="card">
        <h1>
          <span class="logo" aria-hidden="true" /> colony
        </h1>
        {expired ? (
          <p class="warn" role="status">
            That login link was used already or has expired (they work once, for 10 minutes). Paste
            a token instead, or restart the server for a new link.
          </p>
        ) : null}
        <label for="token">Token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          autofocus
          required
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          placeholder="colony_…"
        />
        <p class="hint">
          The server printed a one-time login link when it started. Or paste a token: the admin
          token is in <code>.colony/admin.token</code> of the data dir, and{" "}
          <code>colony token create --role reader</code> makes more. The page keeps no copy: it
          becomes an HttpOnly session cookie.
        </p>
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || !token.trim()}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </main>
  );
}
