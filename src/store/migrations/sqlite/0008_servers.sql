-- Servers sharing a store each keep task output in their own data dir. Every task
-- execution records the id of the data dir that holds its output (server, from
-- {data}/server.id), and every server records where it answers (servers), so that any
-- server can fetch output another one holds. Dates are integer ms since the epoch.
ALTER TABLE task_executions ADD COLUMN server TEXT;

CREATE TABLE servers (
  id       TEXT PRIMARY KEY,
  node_id  TEXT NOT NULL,
  url      TEXT NOT NULL,
  seen_at  INTEGER NOT NULL
);
