-- Async actions (SPEC section 9, seed 004; PostgreSQL dialect, sqlite/ has the same logical
-- schema in the file of the same number): what running processes report through the hook,
-- the artifact store's metadata (the bytes are files in {data}/artifacts) and the
-- schedules of job types with a cron_trigger.

-- The last report a task's process sent to the hook (POST {JOB_HOOK}/status).
ALTER TABLE task_executions ADD COLUMN hook_status text;
ALTER TABLE task_executions ADD COLUMN hook_status_details json;
ALTER TABLE task_executions ADD COLUMN hook_error_message text;
ALTER TABLE task_executions ADD COLUMN hook_updated_at timestamptz;

CREATE TABLE artifacts (
  -- Listing order and paging cursor.
  seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id                 text NOT NULL UNIQUE,
  -- The hook's {store}/{uuid}/{property}/{index}: index counts files under one name from 0.
  store              text NOT NULL,
  owner_id           text NOT NULL,
  property           text NOT NULL,
  idx                integer NOT NULL,
  -- What it is attached to (absent for files a /jobs process uploaded).
  job_request_id     bigint REFERENCES job_requests (id) ON DELETE CASCADE,
  task_execution_id  text,
  task_type          text,
  name               text NOT NULL,
  mimetype           text NOT NULL,
  size               bigint NOT NULL,
  -- md5 and md5("WEBDA" + content) as the seed's upload sends them; the blob file is
  -- named by sha256 (md5 alone is not collision resistant).
  md5                text NOT NULL,
  challenge          text NOT NULL,
  sha256             text NOT NULL,
  metadata           json NOT NULL DEFAULT '{}',
  created_at         timestamptz NOT NULL,
  expires_at         timestamptz,
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
  job_type             text PRIMARY KEY,
  cron                 text NOT NULL,
  timezone             text,
  paused               boolean NOT NULL DEFAULT false,
  last_fired_at        timestamptz NOT NULL,
  last_job_request_id  bigint,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL
);
