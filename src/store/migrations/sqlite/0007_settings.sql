-- Store-wide settings, one value per key, set once by the first server that needs it
-- (claimSetting). secret_key_check holds a check value of the key that seals secret job
-- variables, so that a server with another secret.key refuses to start on this store.
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
