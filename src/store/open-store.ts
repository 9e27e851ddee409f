/**
 * Picks and opens the store from the configured URL, migrated and ready:
 *   (none)                        SQLite at {dataDir}/colony.db
 *   sqlite:///abs/path.db         SQLite at an absolute path
 *   sqlite:relative/path.db       SQLite at a path relative to the data dir
 *   sqlite::memory:               SQLite in memory (tests)
 *   postgres://... postgresql://  PostgreSQL; `?schema=name` selects a schema of its own
 */
import { mkdirSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { ColonyError, StoreError } from "../core/errors.ts";
import { messageOf } from "./migrations.ts";
import { createSqliteStore } from "./sqlite-store.ts";
import type { Store } from "./store.ts";
import { redactUrl } from "../core/urls.ts";

export interface OpenStoreOptions {
  url?: string;
  dataDir: string;
  /** Hears what an upgrade's migrations do (Store.migrate). */
  log?: (message: string) => void;
}

const ACCEPTED =
  "sqlite:///absolute/path.db, sqlite:relative/path.db, sqlite::memory:, " +
  "postgres://user:password@host:port/database or postgresql://...";

export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const store = await createStore(options);
  try {
    await store.migrate(options.log);
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
  return store;
}

async function createStore({ url, dataDir }: OpenStoreOptions): Promise<Store> {
  if (url === undefined || url === "") return openSqlite(join(dataDir, "colony.db"));
  if (/^postgres(ql)?:\/\//i.test(url)) {
    const parsed = new URL(url);
    const schema = parsed.searchParams.get("schema") ?? undefined;
    parsed.searchParams.delete("schema");
    // Loaded only here: `pg` is ~30 modules that a SQLite data dir never needs.
    const { createPostgresStore } = await import("./postgres-store.ts");
    return createPostgresStore({ url: parsed.toString(), ...(schema ? { schema } : {}) });
  }
  if (/^sqlite:/i.test(url)) {
    const rest = url.slice("sqlite:".length);
    if (rest === ":memory:") return createSqliteStore({ path: ":memory:" });
    let path: string;
    if (rest.startsWith("//")) {
      // sqlite:///abs/path: an empty host, then the absolute path.
      path = decodeURIComponent(rest.slice(2));
      if (!path.startsWith("/"))
        throw invalid(url, "sqlite:// needs an absolute path (three slashes)");
    } else {
      path = decodeURIComponent(rest);
    }
    if (path === "" || path === "/") throw invalid(url, "it names no file");
    return openSqlite(isAbsolute(path) ? path : resolve(dataDir, path));
  }
  throw invalid(url, "unknown scheme");
}

function openSqlite(path: string): Store {
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (error) {
    throw new StoreError(
      `cannot create the folder of the store at ${path} (${messageOf(error)}); check the data dir`,
      error,
    );
  }
  return createSqliteStore({ path });
}

function invalid(url: string, why: string): ColonyError {
  return new ColonyError(
    "COLONY_CONFIG_INVALID",
    `store URL '${redactUrl(url)}' is not usable (${why}); use one of: ${ACCEPTED}`,
    { status: 400 },
  );
}
