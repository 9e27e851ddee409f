-- Process jobs (SPEC section 8, seed 003): one shell command each, created -> started
-- -> stopped (postgres/0003_process_jobs.sql is the same logical schema).
-- Ids start at 0 and are shown zero-padded ("0000"); the insert assigns MAX(id) + 1 in
-- the same statement, and rows are never deleted, so an id is never reused.

CREATE TABLE process_jobs (
  id               INTEGER PRIMARY KEY,
  command          TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('created', 'started', 'stopped')),
  reason_for_exit  TEXT NOT NULL DEFAULT '',
  timeout_ms       INTEGER NOT NULL,
  -- The unit whose directory ({data}/units/{unit_id}) holds the process's output.
  unit_id          TEXT NOT NULL UNIQUE,
  -- The node running the process: only it follows, times out and recovers the job.
  node_id          TEXT NOT NULL,
  -- The executor's start handle (pid, exit file), for re-attach after a restart.
  handle           TEXT,
  exit_code        INTEGER,
  created_by       TEXT,
  created_at       INTEGER NOT NULL,
  started_at       INTEGER,
  ended_at         INTEGER
);

CREATE INDEX process_jobs_node_status ON process_jobs (node_id, status);
