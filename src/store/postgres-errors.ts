/**
 * PostgreSQL failures as colony errors: the SQLSTATE (or the socket error) says what
 * happened, the message says where (never with credentials) and what to do.
 */
import { ColonyError, StoreError } from "../core/errors.ts";

const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "ETIMEDOUT",
  "ECONNRESET",
  "EHOSTUNREACH",
  "EAI_AGAIN",
  "EPIPE",
]);

/**
 * Turns a pg failure into a StoreError saying what happened and what to do; anything
 * else (a ColonyError, a bug) is returned unchanged. `where` is host:port/database.
 */
export function postgresFailure(
  error: unknown,
  where: string,
  what: string,
  closed = false,
): unknown {
  if (error instanceof ColonyError) return error;
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  const at = `PostgreSQL at ${where}`;
  const msg = error.message;
  const fail = (text: string) => new StoreError(text, error);
  if (closed || /pool after calling end/.test(msg)) {
    return fail(`the store on ${at} is closed (while ${what}); open the store again`);
  }
  if (typeof code !== "string") {
    if (/Connection terminated|timeout exceeded when trying to connect/i.test(msg)) {
      return fail(
        `lost the connection to ${at} while ${what} (${msg}); check that the server runs`,
      );
    }
    return error; // not a database failure: a bug, shown as it is
  }
  if (UNREACHABLE.has(code) || code.startsWith("08")) {
    return fail(
      `cannot reach ${at} while ${what} (${msg}); check that the server runs and the store URL is right`,
    );
  }
  switch (code) {
    case "53100":
      return fail(
        `${at} is out of disk space while ${what}; free space on the database server and retry`,
      );
    case "53200":
      return fail(`${at} is out of memory while ${what}; retry later`);
    case "53300":
      return fail(
        `${at} has too many connections (while ${what}); lower poolSize or raise max_connections`,
      );
    case "57P01":
    case "57P02":
    case "57P03":
      return fail(`${at} is shutting down or starting up (while ${what}); retry shortly`);
    case "28P01":
    case "28000":
      return fail(`${at} refused the login (${msg}); check the user and password in the store URL`);
    case "3D000":
      return fail(`${at}: ${msg}; create the database or fix the store URL`);
    case "58030":
      return fail(
        `${at} had an I/O error while ${what} (${msg}); check the database server's disk`,
      );
    case "XX001":
    case "XX002":
      return fail(`${at} reports corrupt data while ${what} (${msg}); restore from a backup`);
    case "40001":
    case "40P01":
      return fail(`${at} aborted a conflicting transaction while ${what}; retry`);
    default:
      return fail(`${at} failed while ${what}: ${msg} (SQLSTATE ${code})`);
  }
}

/** host:port/database of a connection URL, without credentials (for messages). */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.host || "localhost"}${parsed.pathname || ""}`;
  } catch {
    return "the configured server";
  }
}
