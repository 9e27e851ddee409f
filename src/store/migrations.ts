/**
 * Schema migrations: numbered, append-only SQL files in migrations/{sqlite,postgres}/
 * named `NNNN_name.sql`. Each backend applies the pending ones in order inside one
 * transaction and records them in `schema_migrations(version, name, checksum,
 * applied_at)`. A migration already applied whose file changed since is refused at
 * start: released migrations are history, new changes are new files.
 *
 * The parts that do not depend on the database (finding the files, checksums, deciding
 * what to apply) are shared; each dialect has a small runner below that the backend
 * calls inside its own transaction (SQLite's stays synchronous, so nothing of the same
 * process can interleave with it).
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { definitionHash } from "./definition-texts.ts";
import { fileURLToPath } from "node:url";
import type { ClientBase } from "pg";
import { StoreError } from "../core/errors.ts";

export type Dialect = "sqlite" | "postgres";

export interface Migration {
  version: number;
  /** The file name, e.g. `0001_initial.sql`. */
  name: string;
  sql: string;
  /** sha256 (hex) of the file with line endings normalised to \n. */
  checksum: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

const FILE_PATTERN = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** The folder holding the migrations of a dialect (next to this module, also in dist/). */
export function migrationsDir(dialect: Dialect): string {
  return fileURLToPath(new URL(`./migrations/${dialect}/`, import.meta.url));
}

/** Line endings are normalised so a checkout with CRLF does not look like an edit. */
export function checksumOf(text: string): string {
  return createHash("sha256").update(text.replace(/\r\n/g, "\n")).digest("hex");
}

/**
 * Reads the migration files of a folder, in version order. Versions must run 1, 2, 3...
 * without gaps or duplicates, and every .sql file must follow the naming pattern: a
 * misnamed file would otherwise be silently skipped.
 */
export function loadMigrations(dir: string): Migration[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith(".sql"));
  } catch (error) {
    throw new StoreError(`cannot read the migrations folder ${dir}: ${messageOf(error)}`, error);
  }
  const migrations: Migration[] = [];
  for (const name of names) {
    const match = FILE_PATTERN.exec(name);
    if (!match) {
      throw new StoreError(
        `migration file ${join(dir, name)} is misnamed; name it NNNN_lowercase_words.sql`,
      );
    }
    const sql = readFileSync(join(dir, name), "utf8");
    migrations.push({ version: Number(match[1]), name, sql, checksum: checksumOf(sql) });
  }
  migrations.sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new StoreError(
        `migrations in ${dir} must be numbered 0001, 0002, ... without gaps or duplicates; ` +
          `found ${migration.name} where version ${index + 1} was expected`,
      );
    }
  });
  return migrations;
}

/**
 * Compares the files with what the database has applied and returns the migrations
 * still to apply. Throws a StoreError when an applied migration's file changed or is
 * missing (the database is newer than this colony, or someone edited history).
 */
export function planMigrations(
  files: Migration[],
  applied: AppliedMigration[],
  where: string,
): Migration[] {
  const byVersion = new Map(files.map((m) => [m.version, m]));
  for (const row of applied) {
    const file = byVersion.get(row.version);
    if (!file) {
      throw new StoreError(
        `${where} has migration ${row.name} (version ${row.version}) that this colony does not ` +
          `know; the store was migrated by a newer colony: upgrade colony to use it`,
      );
    }
    if (file.checksum !== row.checksum) {
      throw new StoreError(
        `migration file ${file.name} changed after it was applied to ${where} (checksum ` +
          `${row.checksum.slice(0, 12)}... in the store, ${file.checksum.slice(0, 12)}... on disk); ` +
          `released migrations must never be edited: restore the file and add a new migration`,
      );
    }
  }
  const done = new Set(applied.map((row) => row.version));
  return files.filter((m) => !done.has(m.version));
}

/** Where a store says what an upgrade does while it migrates (the server's log). */
export type MigrationLog = (message: string) => void;

/**
 * Says, on a store that already had migrations (an upgrade: a new store is silent), which
 * migration starts, and returns what says it ended: one of them may copy every job row.
 */
function announce(
  log: MigrationLog | undefined,
  applied: readonly AppliedMigration[],
  migration: Migration,
  where: string,
): () => void {
  if (!log || applied.length === 0) return () => undefined;
  const started = performance.now();
  log(`upgrading ${where}: applying migration ${migration.name}`);
  return () => {
    const seconds = (performance.now() - started) / 1000;
    log(`upgraded ${where}: migration ${migration.name} applied in ${seconds.toFixed(1)} s`);
  };
}

/**
 * Applies the pending SQLite migrations. The caller holds a BEGIN IMMEDIATE
 * transaction, so a failure leaves the file as it was.
 */
export function migrateSqlite(db: DatabaseSync, where: string, log?: MigrationLog): void {
  const files = loadMigrations(migrationsDir("sqlite"));
  // 0010 keys the definitions it moves by the hash the store computes for new ones.
  db.function("colony_sha256", { deterministic: true }, (text) => definitionHash(String(text)));
  db.exec(
    `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, ` +
      `name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
  );
  const applied = db
    .prepare("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    .all() as unknown as AppliedMigration[];
  for (const migration of planMigrations(files, applied, where)) {
    const done = announce(log, applied, migration, where);
    try {
      db.exec(migration.sql);
    } catch (error) {
      throw failed("sqlite", migration, where, error);
    }
    db.prepare("INSERT INTO schema_migrations VALUES (?, ?, ?, ?)").run(
      migration.version,
      migration.name,
      migration.checksum,
      Date.now(),
    );
    done();
  }
}

/**
 * Applies the pending PostgreSQL migrations. The caller holds a transaction on
 * `client`; an advisory lock makes servers starting together migrate one at a time.
 */
export async function migratePostgres(
  client: ClientBase,
  where: string,
  log?: MigrationLog,
): Promise<void> {
  const files = loadMigrations(migrationsDir("postgres"));
  await client.query(
    "SELECT pg_advisory_xact_lock(hashtext('colony.migrate'), hashtext(current_schema()))",
  );
  await client.query(
    `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,
       name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL)`,
  );
  const applied = await client.query<AppliedMigration>(
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
  );
  for (const migration of planMigrations(files, applied.rows, where)) {
    const done = announce(log, applied.rows, migration, where);
    try {
      await client.query(migration.sql);
    } catch (error) {
      throw failed("postgres", migration, where, error);
    }
    await client.query("INSERT INTO schema_migrations VALUES ($1, $2, $3, $4)", [
      migration.version,
      migration.name,
      migration.checksum,
      new Date(),
    ]);
    done();
  }
}

function failed(dialect: Dialect, migration: Migration, where: string, error: unknown) {
  return new StoreError(
    `migration ${dialect}/${migration.name} failed on ${where}: ${messageOf(error)}; nothing was changed`,
    error,
  );
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
