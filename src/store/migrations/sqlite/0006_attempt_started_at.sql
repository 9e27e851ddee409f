-- started_at and ended_at are those of a job request's current attempt: a job-level
-- retry or a restart clears both (the job's timeout counts from its attempt's start).
-- Before, a retry or restart kept the first attempt's started_at; requests waiting for
-- their next attempt then are PENDING with it set. Clear it, so that their timeout does not
-- count from that old start. (No request was PENDING after having started in the same
-- attempt before this release: handing a started job back to the store came with it.)
UPDATE job_requests SET started_at = NULL WHERE state = 'PENDING' AND started_at IS NOT NULL;
