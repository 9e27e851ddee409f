/**
 * The job hook end to end (SPEC section 9, seed 004): seed 004's Python primitives,
 * byte for byte (test/fixtures/hook/seed-primitives.py) with Debian's python3-requests,
 * run as the script of a SHELL task on a real server: status reports show on the task
 * (API and CLI), logs land in its output, the upload lands in the artifact store, a
 * second upload of the same bytes answers done: true, the download is byte-identical,
 * a forged X-Job-Hash gets 403; results reach later tasks; status ERROR fails a task
 * that exits 0; the key dies with the execution; task artifacts and dependencies move
 * files between tasks; /jobs processes get the JOB_* variables too.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient, type ColonyClient, type JobRequestView } from "../src/client/client.ts";
import { seedHashes } from "../src/artifacts/blob-store.ts";
import { hookHeaders } from "../src/hook/hook-auth.ts";
import { runCli, startCli, tempDir } from "./support/cli.ts";
import { startTestServer, type TestServer } from "./support/api-server.ts";

const FIXTURES = new URL("./fixtures/hook/", import.meta.url);
const HAVE_PYTHON =
  spawnSync("python3", ["-c", "import requests"], { stdio: "ignore" }).status === 0;

/** The seed's primitives with the imports its snippet assumes, then the driver. */
function pythonClient(dir: string): string {
  const imports = [
    "import hashlib",
    "import hmac",
    "import string",
    "import time",
    "from os import environ, path",
    "",
    "import requests",
    "",
  ].join("\n");
  const file = join(dir, "client.py");
  writeFileSync(
    file,
    imports +
      readFileSync(new URL("seed-primitives.py", FIXTURES), "utf8") +
      "\n" +
      readFileSync(new URL("seed-client.py", FIXTURES), "utf8"),
  );
  return file;
}

function steps(output: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of output.split("\n")) {
    const m = /^STEP (\S+) ?(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

describe(
  "job hook with seed 004's Python primitives",
  { skip: !HAVE_PYTHON && "python3 with requests is not installed" },
  () => {
    let server: TestServer;
    let client: ColonyClient;
    const dir = tempDir("colony-hook-");

    before(async () => {
      server = await startTestServer();
      client = createClient({ server: server.url, token: server.adminToken });
    });
    after(async () => {
      client?.close();
      await server?.close();
      dir.remove();
    });

    const run = async (yaml: string): Promise<JobRequestView> => {
      const job = await client.submitDefinition(yaml);
      await server.runtime.engine.waitFor(job.id);
      return client.getJobRequest(job.id);
    };

    it("status, logs, upload, dedup, byte-identical download, forged hash, results", async () => {
      const script = pythonClient(dir.path);
      const job = await run(
        [
          "job_type: seed-hook",
          "tasks:",
          "- task_type: python",
          `  script: ["python3 ${script}"]`,
          "  on_completed: [after]",
          "- task_type: after",
          "  script: ['echo answer={{.answer}} word={{.word}}']",
        ].join("\n"),
      );
      const [python, later] = job.tasks!;
      const output = await text(await client.taskOutput(job.id, "python"));
      assert.equal(job.state, "COMPLETED", output);
      const s = steps(output);

      const env = JSON.parse(s.get("env")!) as Record<string, string>;
      assert.equal(env.JOB_ID, python!.id);
      assert.equal(env.JOB_HOOK, `${server.url}/async`);
      assert.equal(env.JOB_ORCHESTRATOR, "colony");
      assert.equal(s.get("keylen"), "64");

      const running = JSON.parse(s.get("running")!) as Record<string, unknown>;
      assert.equal(running.status, "RUNNING");
      assert.equal(running.uuid, python!.id);
      assert.deepEqual(Object.keys(running).sort(), [
        "_lastJobUpdate",
        "job",
        "results",
        "status",
        "type",
        "uuid",
      ]);
      assert.doesNotMatch(s.get("running")!, /[0-9a-f]{64}/, "the answer never holds the key");
      assert.match(output, /^log line from the hook$/m, "hook logs land in the task output");
      assert.equal(
        s.get("bare"),
        "200 RUNNING",
        "POST {JOB_HOOK} with no body is a report of nothing",
      );

      assert.match(
        output,
        /STEP uploaded\nAlready uploaded\nSTEP uploaded-again/,
        "second upload: done true",
      );
      assert.match(s.get("download")!, /^identical [0-9a-f]{32}$/);
      assert.equal(s.get("forged"), "403");
      assert.equal(s.get("unknown"), "404");
      assert.equal(s.get("missing"), "404");
      assert.equal(s.get("stale"), "403");
      assert.equal(s.get("nohash"), "400");
      const success = JSON.parse(s.get("success")!) as {
        status: string;
        results: Record<string, unknown>;
      };
      assert.equal(success.status, "SUCCESS");
      assert.deepEqual(success.results, { answer: 42, word: "forty-two" });

      // On the task, through the API...
      assert.equal(python!.hook?.status, "SUCCESS");
      assert.deepEqual(python!.hook?.status_details, { progress: 10 });
      assert.ok(python!.hook?.updated_at);
      assert.equal(python!.context.answer, 42);
      // ...results reached the later task...
      assert.match(
        await text(await client.taskOutput(job.id, "after")),
        /answer=42 word=forty-two/,
      );
      assert.equal(later!.state, "COMPLETED");
      // ...and the CLI shows the hook status.
      const shown = await runCli([
        "jobs",
        "show",
        String(job.id),
        "--server",
        server.url,
        "--token",
        server.adminToken!,
      ]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(
        shown.stdout,
        new RegExp(`hook python \\(${python!.id}\\): SUCCESS \\{"progress":10\\}`),
      );

      // The upload is one artifact (the second upload did not add one), attached to the task.
      const page = await client.listArtifacts({ jobRequestId: job.id });
      assert.equal(page.items.length, 1);
      const artifact = page.items[0]!;
      assert.equal(artifact.task_execution_id, python!.id);
      assert.equal(artifact.task_type, "python");
      assert.equal(artifact.uuid, python!.id);
      assert.equal(artifact.property, "report");
      assert.equal(artifact.name, "payload.bin");
      assert.equal(artifact.mimetype, "application/x-test");
      assert.equal(artifact.size, 200_003);
      assert.ok(artifact.expires_at, "artifacts expire by default");
      const chunks: Buffer[] = [];
      for await (const c of await client.downloadArtifact(artifact.id)) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      assert.equal(createHash("md5").update(bytes).digest("hex"), artifact.md5);

      // The execution has ended: a request for it is refused as for an unknown job.
      const late = await fetch(`${server.url}/async/status`, {
        method: "POST",
        headers: { ...hookHeaders(python!.id, "0".repeat(64)), "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(late.status, 404);
    });

    it("docs/hook.md's shell example (openssl + curl) reports through the hook", async () => {
      const doc = readFileSync(new URL("../docs/hook.md", import.meta.url), "utf8");
      const snippet = /```sh\n([\s\S]*?)```/.exec(doc)?.[1];
      assert.ok(snippet, "docs/hook.md has a sh example");
      const file = join(dir.path, "doc-example.sh");
      writeFileSync(file, snippet);
      const job = await run(
        ["job_type: hook-doc", "tasks:", "- task_type: sh", `  script: ["bash ${file}"]`].join(
          "\n",
        ),
      );
      assert.equal(job.state, "COMPLETED");
      assert.equal(job.tasks![0]!.hook?.status, "SUCCESS");
      assert.deepEqual(job.tasks![0]!.hook?.status_details, { progress: 50 });
      assert.match(await text(await client.taskOutput(job.id, "sh")), /"status":"RUNNING"/);
    });

    it("status ERROR with errorMessage fails a task whose process exits 0", async () => {
      const dirPy = join(dir.path, "error.py");
      writeFileSync(
        dirPy,
        [
          "import hashlib, hmac, string, time",
          "from os import environ, path",
          "import requests",
          readFileSync(new URL("seed-primitives.py", FIXTURES), "utf8"),
          'send_status({"status": "ERROR", "errorMessage": "the model did not converge"})',
          'print("exiting 0 anyway")',
        ].join("\n"),
      );
      const job = await run(
        [
          "job_type: hook-error",
          "tasks:",
          "- task_type: fit",
          `  script: ["python3 ${dirPy}"]`,
        ].join("\n"),
      );
      assert.equal(job.state, "FAILED");
      const task = job.tasks![0]!;
      assert.equal(task.state, "FAILED");
      assert.equal(task.exit_code, 0);
      assert.equal(task.error_code, "COLONY_HOOK_ERROR");
      assert.equal(task.error_message, "the model did not converge");
      assert.equal(task.hook?.status, "ERROR");
    });

    it("task artifacts: paths stored after a task, dependencies fetched before a later one", async () => {
      const job = await run(
        [
          "job_type: artifacts-flow",
          "tasks:",
          "- task_type: build",
          "  script:",
          "    - mkdir -p dist/sub",
          "    - printf 'binary %s' {{.Tag}} > dist/app.bin",
          "    - echo nested > dist/sub/n.txt",
          "    - echo log > build.log",
          "  artifacts: {paths: [dist, build.log, 'missing/*.x'], expires_after: 2h}",
          "  on_completed: [ship]",
          "- task_type: ship",
          "  dependencies: [build]",
          "  script: ['cat dist/app.bin', 'echo', 'cat dist/sub/n.txt build.log', 'pwd']",
        ]
          .join("\n")
          .replace("{{.Tag}}", "v1"),
      );
      assert.equal(job.state, "COMPLETED");
      const build = await text(await client.taskOutput(job.id, "build"));
      assert.match(
        build,
        /colony: stored 3 artifacts: build\.log, dist\/app\.bin, dist\/sub\/n\.txt/,
      );
      assert.match(build, /artifacts path 'missing\/\*\.x' matched no file/);
      const ship = await text(await client.taskOutput(job.id, "ship"));
      assert.match(ship, /fetched 3 artifact files of build/);
      assert.match(ship, /binary v1\nnested\nlog\n/);
      assert.match(ship, new RegExp(`units/${job.tasks![1]!.id}/work`));
      const page = await client.listArtifacts({ jobRequestId: job.id, taskType: "build" });
      assert.deepEqual(page.items.map((a) => a.name).sort(), [
        "build.log",
        "dist/app.bin",
        "dist/sub/n.txt",
      ]);
      const expires =
        Date.parse(page.items[0]!.expires_at!) - Date.parse(page.items[0]!.created_at);
      assert.ok(Math.abs(expires - 7_200_000) < 5000, `expires_after 2h, got ${expires} ms`);
    });

    it("uploads are verified: mismatched bytes refused, URLs single-use, scope enforced", async () => {
      const job = await client.submitDefinition(
        "job_type: hook-raw\ntasks:\n- task_type: wait\n  script: ['echo key=$JOB_SECRET_KEY', 'sleep 30']\n",
      );
      let id: string | undefined;
      for (let i = 0; i < 200 && !id; i++) {
        id = (await client.getJobRequest(job.id)).tasks?.find((t) => t.state === "EXECUTING")?.id;
        if (!id) await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(id, "the task started");
      let key = "";
      for (let i = 0; i < 200 && !key; i++) {
        const out = await text(await client.taskOutput(job.id, "wait"));
        key = /^key=([0-9a-f]{64})$/m.exec(out)?.[1] ?? "";
        if (!key) await new Promise((r) => setTimeout(r, 25));
      }
      assert.ok(key, "the task printed its JOB_SECRET_KEY");
      const signed = (extra: Record<string, string> = {}) => ({
        ...hookHeaders(id!, key),
        "content-type": "application/json",
        ...extra,
      });
      const announce = async (uuid: string, content: string) =>
        fetch(`${server.url}/async/upload/artifacts/${uuid}/raw`, {
          method: "PUT",
          headers: signed(),
          body: JSON.stringify({ ...seedHashes(content), metadata: { name: "raw.txt" } }),
        });
      const first = (await (await announce(id, "the announced bytes")).json()) as {
        done: boolean;
        url: string;
      };
      assert.equal(first.done, false);
      const wrong = await fetch(first.url, { method: "PUT", body: "other bytes" });
      assert.equal(wrong.status, 400);
      assert.equal(
        ((await wrong.json()) as { error: { code: string } }).error.code,
        "COLONY_ARTIFACT_HASH_MISMATCH",
      );
      const again = await fetch(first.url, { method: "PUT", body: "the announced bytes" });
      assert.equal(again.status, 404, "an upload URL is single-use");
      const second = (await (await announce(String(job.id), "the announced bytes")).json()) as {
        url: string;
      };
      const ok = await fetch(second.url, { method: "PUT", body: "the announced bytes" });
      assert.equal(ok.status, 200);
      const stored = (await client.listArtifacts({ uuid: String(job.id) })).items;
      assert.deepEqual(
        stored.map((a) => [a.name, a.size, a.job_request_id]),
        [["raw.txt", 19, job.id]],
      );
      assert.equal(
        (await announce("99999", "x")).status,
        403,
        "another job's files are out of reach",
      );
      const store404 = await fetch(`${server.url}/async/upload/nostore/${id}/raw`, {
        method: "PUT",
        headers: signed(),
        body: JSON.stringify(seedHashes("x")),
      });
      assert.equal(store404.status, 404);
      const download = await fetch(`${server.url}/async/download/artifacts/${job.id}/raw/0`, {
        headers: signed(),
      });
      const answer = (await download.json()) as { Location: string; Map: Record<string, unknown> };
      assert.deepEqual(answer.Map, {
        hash: seedHashes("the announced bytes").hash,
        size: 19,
        mimetype: "text/plain;charset=UTF-8", // the Content-Type the bytes were PUT with
        name: "raw.txt",
        metadata: { name: "raw.txt" },
      });
      assert.equal(await (await fetch(answer.Location)).text(), "the announced bytes");
      const tampered = new URL(answer.Location);
      const sig = tampered.searchParams.get("sig")!;
      tampered.searchParams.set("sig", (sig.startsWith("0") ? "1" : "0") + sig.slice(1));
      assert.equal((await fetch(tampered)).status, 403, "a tampered download URL is refused");
      const missing = await fetch(`${server.url}/async/download/artifacts/${job.id}/raw/1`, {
        headers: signed(),
      });
      assert.equal(missing.status, 404);
      await client.cancelJobRequest(job.id);
      await server.runtime.engine.waitFor(job.id);
    });

    it("a /jobs process gets JOB_* and can report through the hook", async () => {
      const res = await fetch(`${server.url}/jobs`, {
        method: "POST",
        headers: { authorization: server.adminToken!, "content-type": "application/json" },
        body: JSON.stringify({
          command:
            'echo "id=$JOB_ID hook=$JOB_HOOK orch=$JOB_ORCHESTRATOR keylen=${#JOB_SECRET_KEY}"; ' +
            'python3 -c "import hashlib,hmac,os,time,requests; t=str(round(time.time()*1000)); ' +
            "r=requests.post(os.environ['JOB_HOOK']+'/status', json={'status':'RUNNING','logs':['from /jobs']}, " +
            "headers={'X-Job-Id':os.environ['JOB_ID'],'X-Job-Time':t,'X-Job-Hash':hmac.new(os.environ['JOB_SECRET_KEY'].encode(),t.encode(),hashlib.sha256).hexdigest()}); " +
            "print('hook', r.status_code, r.json()['status'])\"",
        }),
      });
      assert.equal(res.status, 201);
      const { id } = (await res.json()) as { id: string };
      const auth = { authorization: server.adminToken!, "content-type": "application/json" };
      await fetch(`${server.url}/jobs/${id}`, {
        method: "PUT",
        headers: auth,
        body: '{"status":"started"}',
      });
      let view: { status: string; logs: string } | undefined;
      for (let i = 0; i < 200; i++) {
        view = (await (
          await fetch(`${server.url}/jobs/${id}`, { headers: auth })
        ).json()) as typeof view;
        if (view!.status === "stopped") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(view?.status, "stopped");
      assert.match(
        view!.logs,
        new RegExp(`id=[A-Za-z0-9]{8} hook=${server.url}/async orch=colony keylen=64`),
      );
      assert.match(view!.logs, /from \/jobs\nhook 200 RUNNING/);
    });
  },
);

describe("the hook across a server crash", () => {
  it("a re-attached process keeps its key; the key still dies with the execution", async () => {
    const dir = tempDir("colony-hook-restart-");
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    const serve = async () => {
      const run = startCli([
        "server",
        "--data-dir",
        dir.path,
        "--port",
        String(port),
        "--insecure-no-auth",
      ]);
      for (let i = 0; i < 300; i++) {
        if (run.child.exitCode !== null)
          throw new Error(`colony server exited: ${(await run.result).stderr}`);
        if (
          await fetch(`${url}/api/health`).then(
            (r) => r.ok,
            () => false,
          )
        )
          return run;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error("colony server did not answer");
    };
    const script = join(dir.path, "reporter.sh");
    writeFileSync(
      script,
      [
        'echo "key=$JOB_SECRET_KEY"',
        "report() {",
        "  t=$(date +%s%3N)",
        '  h=$(printf %s "$t" | openssl dgst -sha256 -hmac "$JOB_SECRET_KEY" -hex | sed \'s/.* //\')',
        '  code=$(curl -s -o /dev/null -w "%{http_code}" -X POST "$JOB_HOOK/status" -H "X-Job-Id: $JOB_ID" \\',
        '    -H "X-Job-Time: $t" -H "X-Job-Hash: $h" -H "content-type: application/json" \\',
        '    -d "{\\"statusDetails\\": {\\"n\\": $1}}")',
        '  echo "n=$1 code=$code"',
        "}",
        "for n in $(seq 1 24); do report $n; sleep 0.1; done",
        // The last report waits for the restarted server (however long it takes to come
        // back on a loaded machine): it must be accepted with the key the process holds.
        'for i in $(seq 1 300); do report 25; [ "$code" = 200 ] && break; sleep 0.1; done',
      ].join("\n"),
    );
    let server = await serve();
    const client = createClient({ server: url });
    try {
      const job = await client.submitDefinition(
        `job_type: reporter\ntasks:\n- task_type: r\n  script: ["bash ${script}"]\n`,
      );
      let status: unknown;
      for (let i = 0; i < 400 && (status as { n?: number } | undefined)?.n !== 3; i++) {
        status = (await client.getJobRequest(job.id)).tasks?.[0]?.hook?.status_details;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.deepEqual(status, { n: 3 }, "reports arrived before the crash");
      server.child.kill("SIGKILL");
      await server.result;
      server = await serve();
      let done;
      for (let i = 0; i < 600; i++) {
        done = await client.getJobRequest(job.id);
        if (done.state === "COMPLETED" || done.state === "FAILED") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(done?.state, "COMPLETED");
      const task = done!.tasks![0]!;
      assert.deepEqual(task.hook?.status_details, { n: 25 }, "the last report came through");
      const out = readFileSync(join(dir.path, "units", task.id, "stdout"), "utf8");
      assert.match(out, /n=25 code=200/);
      // The key died with it, also for the server that only re-attached to it.
      const key = /^key=([0-9a-f]{64})$/m.exec(out)?.[1];
      assert.ok(key, "the task printed its key");
      const late = await fetch(`${url}/async/status`, {
        method: "POST",
        headers: { ...hookHeaders(task.id, key), "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(late.status, 404, "a request signed with the ended task's key is refused");
    } finally {
      client.close();
      server.child.kill("SIGTERM");
      await server.result;
      dir.remove();
    }
  });
});
