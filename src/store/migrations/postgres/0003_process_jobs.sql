-- Process jobs (SPEC section 8, seed 003): one shell command each, created -> started
-- -> stopped (sqlite/0003_process_jobs.sql is the same logical schema).
-- Ids start at 0 and are shown zero-padded ("0000").

CREATE TABLE process_jobs (
  id               bigint GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0) PRIMARY KEY,
  command          text NOT NULL,
  status           text NOT NULL CHECK (status IN ('created', 'started', 'stopped')),
  reason_for_exit  text NOT NULL DEFAULT '',
  timeout_ms       bigint NOT NULL,
  -- The unit whose directory ({data}/units/{unit_id}) holds the process's output.
  unit_id          text NOT NULL UNIQUE,
  -- The node running the process: only it follows, times out and recovers the job.
  node_id          text NOT NULL,
  -- The executor's start handle (pid, exit file), for re-attach after a restart.
  handle           json,
  exit_code        integer,
  created_by       text,
  created_at       timestamptz NOT NULL,
  started_at       timestamptz,
  ended_at         timestamptz
);

CREATE INDEX process_jobs_node_status ON process_jobs (node_id, status);
