-- Job requests no longer each carry a copy of their definition's JSON: the jobs of one
-- type (and version) share one row of job_request_definitions, keyed by the SHA-256 of
-- the text (definition-texts.ts; sqlite/ has the same logical change in the file of the
-- same number). Definitions with sealed secrets differ per job and still take one row each.

CREATE TABLE job_request_definitions (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sha256      text NOT NULL UNIQUE,
  definition  json NOT NULL
);

INSERT INTO job_request_definitions (sha256, definition)
  SELECT encode(sha256(convert_to(t, 'UTF8')), 'hex'), t::json
  FROM (SELECT definition::text AS t, min(id) AS first FROM job_requests GROUP BY definition::text) AS texts
  ORDER BY first;

ALTER TABLE job_requests ADD COLUMN definition_id bigint REFERENCES job_request_definitions (id);

UPDATE job_requests j SET definition_id = d.id
  FROM job_request_definitions d WHERE d.sha256 = encode(sha256(convert_to(j.definition::text, 'UTF8')), 'hex');

ALTER TABLE job_requests ALTER COLUMN definition_id SET NOT NULL;
ALTER TABLE job_requests DROP COLUMN definition;
