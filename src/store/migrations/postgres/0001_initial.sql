-- colony store, initial schema (PostgreSQL dialect; sqlite/0001_initial.sql is the same
-- logical schema). Released migrations never change: add a new numbered file instead.
-- Dates are timestamptz. params, definition and handle are json (kept as submitted;
-- jsonb would refuse \u0000); context is jsonb because the store merges into it.

CREATE TABLE job_definitions (
  job_type    text PRIMARY KEY,
  version     integer NOT NULL,
  definition  json NOT NULL,
  source      text NOT NULL,
  paused      boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL
);

CREATE TABLE job_requests (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_type          text NOT NULL,
  state             text NOT NULL CHECK (state IN
                      ('PENDING', 'READY', 'STARTED', 'EXECUTING', 'COMPLETED', 'FAILED', 'CANCELLED', 'PAUSED')),
  params            json NOT NULL,
  definition        json NOT NULL,
  -- Copied from definition.maxConcurrency at insert, so claims need not parse JSON.
  max_concurrency   integer,
  attempt           integer NOT NULL DEFAULT 0,
  scheduled_at      timestamptz NOT NULL,
  created_at        timestamptz NOT NULL,
  started_at        timestamptz,
  ended_at          timestamptz,
  error_code        text,
  error_message     text,
  owner             text,
  lease_expires_at  timestamptz,
  cancel_requested  boolean NOT NULL DEFAULT false,
  submitted_by      text,
  updated_at        timestamptz NOT NULL
);

CREATE INDEX job_requests_due ON job_requests (state, scheduled_at, id);
CREATE INDEX job_requests_type_state ON job_requests (job_type, state);
CREATE INDEX job_requests_state_id ON job_requests (state, id);
CREATE INDEX job_requests_type_id ON job_requests (job_type, id);
CREATE INDEX job_requests_owner ON job_requests (owner);

CREATE TABLE task_executions (
  id              text PRIMARY KEY,
  -- Creation order.
  seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  job_request_id  bigint NOT NULL REFERENCES job_requests (id) ON DELETE CASCADE,
  task_type       text NOT NULL,
  method          text NOT NULL,
  job_attempt     integer NOT NULL,
  attempt         integer NOT NULL,
  state           text NOT NULL CHECK (state IN
                    ('PENDING', 'READY', 'STARTED', 'EXECUTING', 'COMPLETED', 'FAILED', 'CANCELLED', 'PAUSED')),
  exit_code       integer,
  error_code      text,
  error_message   text,
  context         jsonb NOT NULL DEFAULT '{}',
  handle          json,
  ant_id          text,
  created_at      timestamptz NOT NULL,
  started_at      timestamptz,
  ended_at        timestamptz,
  UNIQUE (job_request_id, job_attempt, task_type, attempt)
);
