/**
 * Logs a failure that repeats once, and its end. Loops that poll the store (claims every
 * 500 ms, lease renewals, the cron scheduler) would otherwise log the same "cannot reach
 * PostgreSQL" line several times a second for as long as an outage lasts.
 */
export class FailureLog {
  readonly #log: (message: string) => void;
  /** What is failing now -> the last message logged for it. */
  readonly #failing = new Map<string, string>();

  constructor(log: (message: string) => void) {
    this.#log = log;
  }

  /** `what` failed: logged unless it failed the same way last time. */
  failed(what: string, error: unknown): void {
    const message = String(error);
    if (this.#failing.get(what) === message) return;
    this.#failing.set(what, message);
    this.#log(`${what} failed: ${message} (trying again; said again only if it fails otherwise)`);
  }

  /** `what` worked: says so when it had failed. */
  ok(what: string): void {
    if (this.#failing.delete(what)) this.#log(`${what} works again`);
  }

  /** Whether `what` failed last time. */
  isFailing(what: string): boolean {
    return this.#failing.has(what);
  }
}
