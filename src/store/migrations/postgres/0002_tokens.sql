-- API tokens (PostgreSQL dialect; sqlite/0002_tokens.sql is the same logical schema).
-- A token itself is never stored: only the sha256 (hex) of it, which the server looks up
-- when a request presents the token. The role is checked by the store (not a CHECK
-- constraint) so a new role needs no table rewrite.

CREATE TABLE tokens (
  id            text PRIMARY KEY,
  -- Creation order (tokens made in the same millisecond still list in order).
  seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  name          text NOT NULL,
  role          text NOT NULL,
  hash          text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL,
  last_used_at  timestamptz,
  revoked_at    timestamptz,
  created_by    text
);

CREATE INDEX tokens_role ON tokens (role, revoked_at);
