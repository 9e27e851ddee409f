-- Async actions (SPEC section 9, seed 004; SQLite dialect, postgres/ has the same logical
-- schema in the file of the same number): what running processes report through the hook,
-- the artifact store's metadata (the bytes are files in {data}/artifacts) and the
-- schedules of job types with a cron_trigger. Dates are integer ms since the epoch.

-- The last report a task's process sent to the hook (POST {JOB_HOOK}/status).
ALTER TABLE task_executions ADD COLUMN hook_status TEXT;
ALTER TABLE task_executions ADD COLUMN hook_status_details TEXT;
ALTER TABLE task_executions ADD COLUMN hook_error_message TEXT;
ALTER TABLE task_executions ADD COLUMN hook_updated_at INTEGER;

CREATE TABLE artifacts (
  -- Listing order and paging cursor.
  seq                INTEGER PRIMARY KEY AUTOINCREMENT,
  id                 TEXT NOT NULL UNIQUE,
  -- The hook's {store}/{uuid}/{property}/{index}: index counts files under one name from 0.
  store              TEXT NOT NULL,
  owner_id           TEXT NOT NULL,
  property           TEXT NOT NULL,
  idx                INTEGER NOT NULL,
  -- What it is attached to (absent for files a /jobs process uploaded).
  job_request_id     INTEGER REFERENCES job_requests (id) ON DELETE CASCADE,
  task_execution_id  TEXT,
  task_type          TEXT,
  name               TEXT NOT NULL,
  mimetype           TEXT NOT NULL,
  size               INTEGER NOT NULL,
  -- md5 and md5("WEBDA" + content) as the seed's upload sends them; the blob file is
  -- named by sha256 (md5 alone is not collision resistant).
  md5                TEXT NOT NULL,
  challenge          TEXT NOT NULL,
  sha256             TEXT NOT NULL,
  metadata           TEXT NOT NULL DEFAULT '{}',
  created_at         INTEGER NOT NULL,
  expires_at         INTEGER,
  UNIQUE (store, owner_id, property, idx)
);

CREATE INDEX artifacts_job ON artifacts (job_request_id, seq);
CREATE INDEX artifacts_execution ON artifacts (task_execution_id, seq);
CREATE INDEX artifacts_hashes ON artifacts (md5, challenge);
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
CREATE INDEX artifacts_expiry ON artifacts (expires_at);

-- One per job type with a cron_trigger. last_fired_at is the cron time of the last
-- firing (or the moment the schedule was made or resumed): a firing is claimed by
-- moving it forward with a compare-and-set, in the transaction that inserts the job
-- request, so no two servers (or a restarted one) ever fire the same time twice.
CREATE TABLE schedules (
  job_type             TEXT PRIMARY KEY,
  cron                 TEXT NOT NULL,
  timezone             TEXT,
  paused               INTEGER NOT NULL DEFAULT 0,
  last_fired_at        INTEGER NOT NULL,
  last_job_request_id  INTEGER,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL
);
