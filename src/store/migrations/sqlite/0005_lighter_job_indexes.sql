-- Fewer index entries to move on each job state change (SQLite dialect; postgres/ has the
-- same logical change in the file of the same number). A job changes state four times on
-- its way to COMPLETED, and every index with `state` among its columns moved an entry
-- each time. Claims only look at PENDING requests, and max_concurrency only counts running
-- requests that were submitted with a limit, so those two indexes become partial: an
-- entry is written when a request enters the set and removed when it leaves (requests of
-- types without a limit never enter the second). job_requests_state_id stays for listing
-- by state.
-- job_requests_owner only served lease renewal, which now reads the running requests
-- (job_requests_state_id) instead: its entry moved from NULL to the owner at every claim.

DROP INDEX job_requests_due;
DROP INDEX job_requests_type_state;
DROP INDEX job_requests_owner;

CREATE INDEX job_requests_pending ON job_requests (scheduled_at, id) WHERE state = 'PENDING';
CREATE INDEX job_requests_active ON job_requests (job_type)
  WHERE max_concurrency IS NOT NULL AND state IN ('READY', 'STARTED', 'EXECUTING');
