/**
 * A real `colony server` in a child process for the API benches, so the load
 * generator (this process) and the server do not share an event loop: a temp data dir,
 * an optional colony.yaml, the admin token it writes, and a keep-alive HTTP client.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { request, type Agent } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDataDir } from "./support.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface BenchServer {
  url: string;
  token: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startServerProcess(yaml = ""): Promise<BenchServer> {
  const dir = tempDataDir();
  const config = join(dir.path, "colony.yaml");
  writeFileSync(config, yaml);
  const dataDir = join(dir.path, "data");
  const child: ChildProcess = spawn(
    process.execPath,
    ["bin/colony.js", "server", "--config", config, "--data-dir", dataDir, "--port", "0"],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } },
  );
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /listening on (http\S+)/.exec(out);
      if (m) {
        clearInterval(timer);
        resolve(m[1]!);
      }
    }, 20);
    child.once("exit", (code) => {
      clearInterval(timer);
      reject(new Error(`colony server exited with ${code}:\n${out}`));
    });
  });
  const token = readFileSync(join(dataDir, "admin.token"), "utf8").trim();
  return {
    url,
    token,
    dataDir,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await new Promise((resolve) => child.once("exit", resolve));
      }
      dir.remove();
    },
  };
}

export interface HttpResult {
  status: number;
  body: string;
}

/** One request over `agent` (keep-alive), the whole body read as text. */
export function send(
  agent: Agent,
  url: string,
  options: { method?: string; token: string; json?: unknown },
): Promise<HttpResult> {
  const body = options.json === undefined ? undefined : JSON.stringify(options.json);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        agent,
        method: options.method ?? (body === undefined ? "GET" : "POST"),
        headers: {
          authorization: options.token,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("error", reject);
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
