-- colony store, initial schema (SQLite dialect; postgres/0001_initial.sql is the same
-- logical schema). Released migrations never change: add a new numbered file instead.
-- Dates are integer milliseconds since the epoch; JSON columns are TEXT.

CREATE TABLE job_definitions (
  job_type    TEXT PRIMARY KEY,
  version     INTEGER NOT NULL,
  definition  TEXT NOT NULL,
  source      TEXT NOT NULL,
  paused      INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE job_requests (
  -- AUTOINCREMENT: ids are never reused, so paging cursors and unit links stay valid.
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  job_type          TEXT NOT NULL,
  state             TEXT NOT NULL CHECK (state IN
                      ('PENDING', 'READY', 'STARTED', 'EXECUTING', 'COMPLETED', 'FAILED', 'CANCELLED', 'PAUSED')),
  params            TEXT NOT NULL,
  definition        TEXT NOT NULL,
  -- Copied from definition.maxConcurrency at insert, so claims need not parse JSON.
  max_concurrency   INTEGER,
  attempt           INTEGER NOT NULL DEFAULT 0,
  scheduled_at      INTEGER NOT NULL,
  created_at        INTEGER NOT NULL,
  started_at        INTEGER,
  ended_at          INTEGER,
  error_code        TEXT,
  error_message     TEXT,
  owner             TEXT,
  lease_expires_at  INTEGER,
  cancel_requested  INTEGER NOT NULL DEFAULT 0,
  submitted_by      TEXT,
  updated_at        INTEGER NOT NULL
);

CREATE INDEX job_requests_due ON job_requests (state, scheduled_at, id);
CREATE INDEX job_requests_type_state ON job_requests (job_type, state);
CREATE INDEX job_requests_state_id ON job_requests (state, id);
CREATE INDEX job_requests_type_id ON job_requests (job_type, id);
CREATE INDEX job_requests_owner ON job_requests (owner);

CREATE TABLE task_executions (
  id              TEXT PRIMARY KEY,
  -- Creation order (rowids may be renumbered by VACUUM; this never is).
  seq             INTEGER NOT NULL UNIQUE,
  job_request_id  INTEGER NOT NULL REFERENCES job_requests (id) ON DELETE CASCADE,
  task_type       TEXT NOT NULL,
  method          TEXT NOT NULL,
  job_attempt     INTEGER NOT NULL,
  attempt         INTEGER NOT NULL,
  state           TEXT NOT NULL CHECK (state IN
                    ('PENDING', 'READY', 'STARTED', 'EXECUTING', 'COMPLETED', 'FAILED', 'CANCELLED', 'PAUSED')),
  exit_code       INTEGER,
  error_code      TEXT,
  error_message   TEXT,
  context         TEXT NOT NULL DEFAULT '{}',
  handle          TEXT,
  ant_id          TEXT,
  created_at      INTEGER NOT NULL,
  started_at      INTEGER,
  ended_at        INTEGER,
  UNIQUE (job_request_id, job_attempt, task_type, attempt)
);
