// Builds the dashboard (web/ -> web/dist) with Vite; run by `npm run build:web` and by
// npm's `prepare` step, so a fresh `npm install` in a checkout leaves the dashboard
// usable. Nothing is downloaded. Without Vite (an install without dev dependencies) it
// says so and succeeds: the server then tells visitors of `/` how to build it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const vite = `${root}node_modules/vite/bin/vite.js`;
if (!existsSync(`${root}web/index.html`)) process.exit(0); // not a checkout: nothing to build
if (!existsSync(vite)) {
  console.error(
    "colony: dashboard not built (vite is not installed; npm install with dev dependencies builds it)",
  );
  process.exit(0);
}
const r = spawnSync(process.execPath, [vite, "build", "web", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
});
process.exit(r.status ?? 1);
