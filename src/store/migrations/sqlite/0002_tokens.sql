-- API tokens (SQLite dialect; postgres/0002_tokens.sql is the same logical schema).
-- A token itself is never stored: only the sha256 (hex) of it, which the server looks up
-- when a request presents the token. Dates are integer milliseconds since the epoch.
-- The role is checked by the store (not a CHECK constraint) so a new role needs no
-- table rebuild.

CREATE TABLE tokens (
  id            TEXT PRIMARY KEY,
  -- Creation order (tokens made in the same millisecond still list in order).
  seq           INTEGER NOT NULL UNIQUE,
  name          TEXT NOT NULL,
  role          TEXT NOT NULL,
  hash          TEXT NOT NULL UNIQUE,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER,
  revoked_at    INTEGER,
  created_by    TEXT
);

CREATE INDEX tokens_role ON tokens (role, revoked_at);
