/**
 * docs/api.md cannot rot: every curl command in its shell blocks runs, in order, with
 * real curl against a real server (a fresh SQLite file, real processes, auth on), and
 * must get a 2xx answer.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient, type ColonyClient } from "../src/client/client.ts";
import { ROOT } from "./support/cli.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";

/** Every `curl ...` command of the ```sh blocks, with backslash continuations joined. */
function curlCommands(markdown: string): string[] {
  const out: string[] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, "");
    for (const line of joined.split("\n")) if (line.startsWith("curl ")) out.push(line);
  }
  return out;
}

const hasCurl = spawnSync("curl", ["--version"]).status === 0;

describe("docs/api.md examples", { skip: hasCurl ? false : "curl is not installed" }, () => {
  let server: TestServer;
  let client: ColonyClient;
  before(async () => {
    // The units examples submit work of the type the page's config shows.
    server = await startTestServer({
      configYaml:
        "work_types:\n  - work_type: echopayload\n    command: bash\n    params: \"-c 'tr a-z A-Z'\"\n",
    });
    client = createClient({ server: server.url, token: server.adminToken });
  });
  after(async () => {
    client?.close();
    await server?.close();
  });

  it("every curl command answers 2xx, in the order the page shows them", async () => {
    const commands = curlCommands(readFileSync(join(ROOT, "docs", "api.md"), "utf8"));
    assert.ok(commands.length >= 25, `found ${commands.length} curl commands`);
    let unit = "";
    for (const command of commands) {
      if (command.includes("/output") || command.includes("$UNIT")) {
        // The output examples read job 1's tasks: let it finish first.
        await server.runtime.engine.waitFor(1);
        unit ||= (await client.getJobRequest(1)).tasks![0]!.id;
      }
      // Asynchronously: the server answering runs in this process.
      const r = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          "bash",
          ["-c", command.replace(/^curl /, "curl --fail-with-body ")],
          {
            cwd: ROOT,
            env: { ...process.env, COLONY: server.url, TOKEN: server.adminToken, UNIT: unit },
            timeout: 30_000,
          },
          (error, stdout, stderr) =>
            resolve({ status: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
        );
      });
      assert.equal(r.status, 0, `${command}\n${r.stdout}\n${r.stderr}`);
      if (!command.includes("-X DELETE")) assert.ok(r.stdout.length > 0, command);
    }
    // What the session did, seen through the API.
    const jobs = (await client.listJobRequests()).items.map((j) => [j.id, j.job_type]);
    assert.deepEqual(jobs, [
      [3, "nightly"],
      [2, "once"],
      [1, "hello-dag"],
    ]);
    assert.equal((await client.getJobRequest(1)).state, "COMPLETED");
    assert.deepEqual(
      (await client.listDefinitions()).map((d) => d.job_type),
      ["hello-dag"],
    );
  });
});
