-- An artifact's bytes are a blob in the data dir of the server that stored it: record
-- that data dir's id, as task executions do for their output (0008), so that another
-- server of the store can fetch the bytes from it, and each server's retention sweep
-- removes only the artifacts whose blobs it holds.
ALTER TABLE artifacts ADD COLUMN server TEXT;
