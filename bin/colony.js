#!/usr/bin/env node
// colony's entry point. In a checkout, Node 24 runs the TypeScript sources directly
// (type stripping); a published package runs the compiled dist/.
import { existsSync } from "node:fs";
import module from "node:module";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  console.error(
    `colony needs Node.js 24 or newer (this is ${process.version}). ` +
      "Run it through npm (npm run colony -- ...) or npx colony, which use the project's own Node 24.",
  );
  process.exit(1);
}
// Compiled code of colony's modules is kept in the OS temp dir (node-compile-cache) for
// the next command: a client command then starts in about half the time (bench/README.md,
// "CLI start"). Node falls back to compiling when the cache is unusable;
// NODE_DISABLE_COMPILE_CACHE=1 turns it off.
module.enableCompileCache?.();
const dist = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const src = new URL("../src/cli/main.ts", import.meta.url);
const { main } = await import(existsSync(dist) ? dist : src.href);
process.exitCode = await main(process.argv.slice(2));
