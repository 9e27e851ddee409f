/**
 * Colony nodes for the work-unit tests: each a real `colony server --config <name>.yaml`
 * child process on loopback with its own data dir, control socket and (fixed, free)
 * port, so a node can be killed and started again on the same address.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { startCli, type CliResult } from "./cli.ts";
import { http, waitUntil } from "./server-harness.ts";

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export class Node {
  readonly name: string;
  readonly dir: string;
  readonly dataDir: string;
  readonly port: number;
  url: string;
  /** The CA that signed its https certificate (configureTls). */
  ca: string | undefined;
  readonly socket: string;
  child: ChildProcess | undefined;
  result: Promise<CliResult> | undefined;
  output: () => string = () => "";
  #yaml = "";
  #tls = "";

  constructor(base: string, name: string, port: number) {
    this.name = name;
    this.dir = join(base, name);
    mkdirSync(this.dir, { recursive: true });
    this.dataDir = join(this.dir, "data");
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.socket = join(this.dataDir, "control.sock");
  }

  get configPath(): string {
    return join(this.dir, `${this.name}.yaml`);
  }

  /** Serves https with this certificate (call before configure). */
  useTls(cert: string, key: string, ca: string): void {
    this.url = `https://127.0.0.1:${this.port}`;
    this.ca = ca;
    this.#tls = `tls: {cert: ${JSON.stringify(cert)}, key: ${JSON.stringify(key)}}\n`;
  }

  /** Writes the config (node_id, data_dir and port are added). */
  configure(yaml: string): void {
    this.#yaml = yaml;
    writeFileSync(
      this.configPath,
      `node_id: ${this.name}\ndata_dir: ./data\nport: ${this.port}\n${this.#tls}${this.#yaml}`,
    );
  }

  get adminToken(): string {
    return readFileSync(join(this.dataDir, "admin.token"), "utf8").trim();
  }

  async start(): Promise<void> {
    const run = startCli(["server", "--config", this.configPath], {
      env: { COLONY_SPAWNER: "perl" },
    });
    this.child = run.child;
    this.result = run.result;
    let stderr = "";
    run.child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    this.output = () => run.stdout() + stderr;
    const info = join(this.dataDir, "server.json");
    await waitUntil(`${this.name} to start`, async () => {
      if (run.child.exitCode !== null) {
        const r = await run.result;
        throw new Error(`colony server ${this.name} exited ${r.code}: ${r.stderr}`);
      }
      if (!existsSync(info) || !existsSync(this.socket)) return false;
      try {
        const parsed = JSON.parse(readFileSync(info, "utf8")) as { pid: number };
        return parsed.pid === run.child.pid && /admin token: /.test(run.stdout());
      } catch {
        return false;
      }
    });
  }

  /** SIGTERM (graceful) or SIGKILL, and waits for the process to end. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await this.result;
    this.child = undefined;
  }

  /** A token of `role` that this node issued. */
  async token(role: string, name: string): Promise<string> {
    const res = await this.api("/api/tokens", { json: { role, name } });
    assert.equal(res.status, 201, res.text);
    return res.json<{ token: string }>().token;
  }

  /** GET/POST against this node's API as admin. */
  api(path: string, options: Parameters<typeof http>[1] = {}) {
    return http(`${this.url}${path}`, {
      ...(this.ca ? { ca: this.ca } : {}),
      ...options,
      headers: { authorization: this.adminToken, ...options.headers },
    });
  }
}

export async function waitForUnit(
  node: Node,
  id: string,
  check: (unit: { state: string; detail: string; stdout_size: number }) => boolean,
  what: string,
  ms = 20_000,
): Promise<{ state: string; detail: string; stdout_size: number; extra_data: unknown }> {
  let last: unknown;
  try {
    await waitUntil(
      `${node.name} unit ${id} ${what}`,
      async () => {
        const res = await node.api(`/api/units/${id}`);
        if (res.status !== 200) return false;
        last = res.json();
        return check(last as { state: string; detail: string; stdout_size: number });
      },
      ms,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen ${JSON.stringify(last)}`, {
      cause: error,
    });
  }
  return last as { state: string; detail: string; stdout_size: number; extra_data: unknown };
}
