// Copies the non-TypeScript files the compiled package needs next to its modules:
// SQL migrations and the spawners (Python, Perl).
import { cpSync } from "node:fs";

for (const dir of ["store/migrations"]) cpSync(`src/${dir}`, `dist/${dir}`, { recursive: true });
for (const file of [
  "store/migrations.lock.json",
  "executors/shell/spawner.pl",
  "executors/shell/spawner.py",
])
  cpSync(`src/${file}`, `dist/${file}`);
