-- Claims that do not read the requests of a type at its max_concurrency (both dialects
-- alike). job_requests_pending ordered every PENDING request by (scheduled_at, id), and a
-- claim walked it past every request of a type whose running ones had reached its
-- limit: with 30,000 requests of a limited type waiting, each claim read all of them
-- (75 jobs/s where 3,000 waiting ran 584/s). The PENDING requests are split in two: those
-- without a limit, still in one (scheduled_at, id) order, and those with one, ordered by
-- type first, so that a claim takes each limited type's oldest requests from its own
-- range of the index (and lists the types by skipping from one to the next), however
-- many wait behind them. Each PENDING request is in one of the two, as it was in one.

DROP INDEX job_requests_pending;

CREATE INDEX job_requests_pending_free ON job_requests (scheduled_at, id)
  WHERE state = 'PENDING' AND max_concurrency IS NULL;
CREATE INDEX job_requests_pending_limited ON job_requests (job_type, scheduled_at, id)
  WHERE state = 'PENDING' AND max_concurrency IS NOT NULL;
