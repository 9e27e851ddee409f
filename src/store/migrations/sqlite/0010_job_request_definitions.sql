-- Job requests no longer each carry a copy of their definition's JSON: the jobs of one
-- type (and version) share one row of job_request_definitions, keyed by the SHA-256 of
-- the text (definition-texts.ts). A job row shrinks from ~540 to ~90 bytes for a one-task
-- definition, so each of a job's state changes rewrites a small record and the pages
-- a commit writes hold the rows of many more jobs. Definitions with sealed secrets differ
-- per job and still take one row each. colony_sha256 is registered on the connection by
-- migrateSqlite (SQLite has no SHA-256 of its own).

CREATE TABLE job_request_definitions (
  id          INTEGER PRIMARY KEY,
  sha256      TEXT NOT NULL UNIQUE,
  definition  TEXT NOT NULL
);

INSERT INTO job_request_definitions (sha256, definition)
  SELECT colony_sha256(definition), definition FROM job_requests
  GROUP BY definition ORDER BY min(id);

ALTER TABLE job_requests ADD COLUMN definition_id INTEGER REFERENCES job_request_definitions (id);

UPDATE job_requests SET definition_id = (
  SELECT d.id FROM job_request_definitions d WHERE d.sha256 = colony_sha256(job_requests.definition)
);

ALTER TABLE job_requests DROP COLUMN definition;
