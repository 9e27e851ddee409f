/**
 * Calls to colony's REST API from the page. The session cookie goes with every call
 * (same origin); calls that change something add the CSRF token from the readable
 * `colony_csrf` cookie. Errors come back as ApiError with the server's code and message.
 */
export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(status: number, code: string, message: string, details?: Record<string, unknown>) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The server has no such route: a feature this server does not have (yet). */
  get routeMissing(): boolean {
    return this.status === 404 && this.code === "COLONY_NOT_FOUND";
  }
}

export function readCookie(name: string): string | undefined {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name)
      return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

const sessionEndedListeners = new Set<() => void>();

/** Called when a call answers 401: the session ended (logout elsewhere, restart, revoked). */
export function onSessionEnded(listener: () => void): () => void {
  sessionEndedListeners.add(listener);
  return () => sessionEndedListeners.delete(listener);
}

export function sessionEnded(): void {
  for (const l of sessionEndedListeners) l();
}

export interface CallOptions {
  method?: string;
  json?: unknown;
  /** A raw body (YAML text), sent with `contentType`. */
  body?: string;
  contentType?: string;
  signal?: AbortSignal;
  /** Answer as text instead of JSON. */
  text?: boolean;
}

export async function call<T>(path: string, options: CallOptions = {}): Promise<T> {
  const method = options.method ?? (options.json === undefined && !options.body ? "GET" : "POST");
  const headers: Record<string, string> = { accept: "application/json" };
  let body: string | undefined;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    headers["content-type"] = options.contentType ?? "text/plain";
    body = options.body;
  }
  if (method !== "GET" && method !== "HEAD") {
    const csrf = readCookie("colony_csrf");
    if (csrf) headers["x-colony-csrf"] = csrf;
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body,
      credentials: "same-origin",
      signal: options.signal,
    });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError(
      0,
      "COLONY_UNREACHABLE",
      "the colony server cannot be reached; is it running?",
    );
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!res.ok) {
    let code = "COLONY_HTTP_" + res.status;
    let message = text || res.statusText;
    let details: Record<string, unknown> | undefined;
    try {
      const parsed = JSON.parse(text) as {
        error?: { code?: string; message?: string; details?: Record<string, unknown> };
      };
      if (parsed.error) {
        code = parsed.error.code ?? code;
        message = parsed.error.message ?? message;
        details = parsed.error.details;
      }
    } catch {
      // not JSON: keep the text
    }
    if (res.status === 401 && !path.startsWith("/api/session")) sessionEnded();
    throw new ApiError(res.status, code, message, details);
  }
  if (options.text) return text as T;
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Every page of a paged list (`{items, next_cursor}`), up to `max` items. */
export async function allPages<T>(path: string, max = 2000): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page: { items: T[]; next_cursor?: string | null } = await call(
      cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path,
    );
    out.push(...page.items);
    cursor = page.next_cursor ?? null;
  } while (cursor && out.length < max);
  return out;
}
