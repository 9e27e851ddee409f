/**
 * receptorctl, for tests. When COLONY_RECEPTORCTL names a command (e.g.
 * "python3 -m receptorctl" with PYTHONPATH pointing at ansible/receptor's receptorctl
 * source, unmodified), that real client runs. Otherwise this module does what
 * receptorctl 1.x does (receptorctl/cli.py and socket_interface.py), byte for byte on
 * the wire and line for line on stdout/stderr:
 *
 * - every invocation connects, reads the greeting, and sends
 *   `{"command":"status","requested_fields":["Version"]}\n` first, then the command on
 *   the same connection;
 * - `work submit` sends one JSON line (Python's json.dumps: `", "` and `": "`
 *   separators, keys in insertion order), the payload, shuts down its write side and
 *   reads `{unitid, result}`; `-f` reconnects for `work results <id> 0` (half-closing
 *   after the header), then reconnects for `work status <id>`;
 * - output as print_json (json.dumps indent=4, sort_keys, ensure_ascii) and its
 *   message formats; exit codes 1, 101 as it uses them.
 */
import { spawn } from "node:child_process";
import net from "node:net";

export interface CtlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export const EMULATED_VERSION = "1.5.0";

/** Runs receptorctl with `args` (e.g. ["--socket", path, "work", "list"]). */
export function receptorctl(
  args: string[],
  options: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv } = {},
): Promise<CtlResult> {
  const real = process.env.COLONY_RECEPTORCTL;
  if (real) return runReal(real, args, options);
  return new Emulator(options.stdin).run(args);
}

export function usingRealReceptorctl(): boolean {
  return Boolean(process.env.COLONY_RECEPTORCTL);
}

function runReal(
  command: string,
  args: string[],
  options: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv },
): Promise<CtlResult> {
  const [exe, ...pre] = command.split(" ").filter(Boolean);
  const child = spawn(exe!, [...pre, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdin.end(options.stdin ?? "");
  return new Promise((resolve) =>
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr })),
  );
}

class ExitError extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`exit ${code}`);
    this.code = code;
  }
}

/** Python's json.dumps(value) with its default separators. */
export function pyDumps(value: unknown, indent?: number, sortKeys = false): string {
  const esc = (s: string) =>
    JSON.stringify(s).replace(
      /[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
  const walk = (v: unknown, depth: number): string => {
    if (v === null || v === undefined) return "null";
    if (typeof v === "string") return esc(v);
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") return String(v);
    const pad = indent === undefined ? "" : "\n" + " ".repeat(indent * (depth + 1));
    const end = indent === undefined ? "" : "\n" + " ".repeat(indent * depth);
    const sep = indent === undefined ? ", " : ",";
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      return `[${v.map((x) => pad + walk(x, depth + 1)).join(sep)}${end}]`;
    }
    const keys = Object.keys(v as object);
    if (sortKeys) keys.sort();
    if (keys.length === 0) return "{}";
    return `{${keys.map((k) => `${pad}${esc(k)}: ${walk((v as Record<string, unknown>)[k], depth + 1)}`).join(sep)}${end}}`;
  };
  return walk(value, 0);
}

class Connection {
  readonly socket: net.Socket;
  #buf = Buffer.alloc(0);
  #ended = false;
  #waiters: Array<() => void> = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (c: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, c]);
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #more(): Promise<boolean> {
    if (this.#ended) return false;
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return true;
  }

  /** Python's readline() (with an optional size limit), decoded; "" at EOF. */
  async readline(limit = Infinity): Promise<Buffer> {
    for (;;) {
      const nl = this.#buf.indexOf(10);
      if (nl >= 0 && nl < limit) {
        const line = this.#buf.subarray(0, nl + 1);
        this.#buf = this.#buf.subarray(nl + 1);
        return line;
      }
      if (this.#buf.length >= limit) {
        const line = this.#buf.subarray(0, limit);
        this.#buf = this.#buf.subarray(limit);
        return line;
      }
      if (!(await this.#more())) {
        const line = this.#buf;
        this.#buf = Buffer.alloc(0);
        return line;
      }
    }
  }

  /** readstr(): readline().decode().strip() */
  async readstr(): Promise<string> {
    return (await this.readline()).toString("utf8").trim();
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(data, (error) => (error ? reject(error) : resolve())),
    );
  }

  close(): void {
    this.socket.destroy();
  }
}

class Emulator {
  readonly #stdinData: Buffer;
  #out = "";
  #err = "";
  #socketPath = "";
  #conn: Connection | undefined;

  constructor(stdin: string | Buffer | undefined) {
    this.#stdinData = Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin ?? "");
  }

  async run(args: string[]): Promise<CtlResult> {
    let code = 0;
    try {
      await this.#main(args);
    } catch (error) {
      if (error instanceof ExitError) code = error.code;
      else {
        this.#error(error instanceof Error ? error.message : String(error));
        code = 1;
      }
    } finally {
      this.#conn?.close();
    }
    return { code, stdout: this.#out, stderr: this.#err };
  }

  #print(message = ""): void {
    this.#out += `${message}\n`;
  }

  #error(message: string): void {
    this.#err += `ERROR: ${message}\n`;
  }

  async #connect(): Promise<Connection> {
    if (this.#conn) return this.#conn;
    const path = this.#socketPath.replace(/^unix:(\/\/)?/, "");
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(path);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const conn = new Connection(socket);
    const greeting = await conn.readstr();
    if (!/^Receptor Control, node (.+)$/.test(greeting)) {
      throw new Error("Failed to connect to Receptor socket");
    }
    this.#conn = conn;
    return conn;
  }

  #close(): void {
    this.#conn?.close();
    this.#conn = undefined;
  }

  async #readAndParseJson(conn: Connection): Promise<Record<string, unknown>> {
    const text = await conn.readstr();
    if (text.startsWith("ERROR:")) throw new Error(text.slice(7));
    return JSON.parse(text) as Record<string, unknown>;
  }

  async #simple(command: string): Promise<Record<string, unknown>> {
    const conn = await this.#connect();
    await conn.write(`${command}\n`);
    return this.#readAndParseJson(conn);
  }

  async #main(argv: string[]): Promise<void> {
    const [flag, socketPath, ...args] = argv;
    if (flag !== "--socket" || socketPath === undefined) throw new Error("--socket is required");
    this.#socketPath = socketPath;
    const version = (await this.#simple('{"command":"status","requested_fields":["Version"]}'))
      .Version;
    if (version !== EMULATED_VERSION) {
      this.#err +=
        "Warning: receptorctl and receptor are different versions, they may not be compatible\n";
    }
    const [group, sub, ...rest] = args;
    if (group === "status") {
      this.#print(pyDumps(await this.#simple("status"), 4, true));
      return;
    }
    if (group === "ping") {
      const results = await this.#simple(`ping ${sub}`);
      if (results.Success) this.#print(`Reply from ${results.From} in ${results.TimeStr}`);
      else {
        this.#error(String(results.Error));
        throw new ExitError(2);
      }
      return;
    }
    if (group !== "work") throw new Error(`No such command '${group}'.`);
    switch (sub) {
      case "list":
        return this.#list(rest);
      case "submit":
        return this.#submit(rest);
      case "results":
        return this.#results(rest[0]!);
      case "cancel":
        if (rest.length === 0) return;
        this.#print("Cancelled:");
        return this.#opOnUnitIds("cancel", rest);
      case "release": {
        const force = rest.includes("--force");
        const all = rest.includes("--all");
        let ids = rest.filter((a) => !a.startsWith("--"));
        if (ids.length === 0 && !all) return;
        this.#print("Released:");
        if (all) ids = Object.keys(await this.#simple("work list"));
        return this.#opOnUnitIds(force ? "force-release" : "release", ids);
      }
      default:
        throw new Error(`No such command '${sub}'.`);
    }
  }

  async #list(args: string[]): Promise<void> {
    const quiet = args.includes("-q") || args.includes("--quiet");
    const i = args.indexOf("--unit_id");
    const unitId = i >= 0 && args[i + 1] ? ` ${args[i + 1]}` : "";
    const work = await this.#simple(`work list${unitId}`);
    if (quiet) for (const k of Object.keys(work)) this.#print(k);
    else this.#print(pyDumps(work, 4, true));
  }

  async #submit(argv: string[]): Promise<void> {
    let worktype: string | undefined;
    let node: string | undefined;
    let payload: string | undefined;
    let literal: string | undefined;
    let noPayload = false;
    let ttl = "";
    let signwork = false;
    let follow = false;
    let rm = false;
    const params: string[] = [];
    const cmdparams: string[] = [];
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      const next = () => argv[++i] ?? "";
      if (a === "--node") node = next();
      else if (a === "--payload" || a === "-p") payload = next();
      else if (a === "--payload-literal" || a === "-l") literal = next();
      else if (a === "--no-payload" || a === "-n") noPayload = true;
      else if (a === "--ttl") ttl = next();
      else if (a === "--signwork") signwork = true;
      else if (a === "--follow" || a === "-f") follow = true;
      else if (a === "--rm") rm = true;
      else if (a === "--param" || a === "-a") params.push(next());
      else if (worktype === undefined) worktype = a;
      else cmdparams.push(a);
    }
    const count = [payload, literal].filter((x) => x !== undefined).length + (noPayload ? 1 : 0);
    if (count < 1) {
      this.#error("Must provide one of --payload, --no-payload or --payload-literal.");
      throw new ExitError(1);
    }
    if (count > 1) {
      this.#error("Cannot provide more than one of --payload, --no-payload and --payload-literal.");
      throw new ExitError(1);
    }
    if (rm && !follow) {
      this.#err += "Warning: using --rm without --follow. Unit results will never be seen.\n";
    }
    const data =
      literal !== undefined
        ? Buffer.from(`${literal}\n`)
        : noPayload
          ? Buffer.alloc(0)
          : this.#stdinData;
    let unitid: string | undefined;
    try {
      const p: Record<string, string> = {};
      for (const s of params) {
        const eq = s.indexOf("=");
        p[s.slice(0, eq)] = s.slice(eq + 1);
      }
      if (cmdparams.length > 0) {
        const all: string[] = [];
        if ("params" in p) all.push(p.params!);
        all.push(...cmdparams);
        p.params = all.join(" ");
      }
      const work = await this.#submitWork(worktype!, data, node || "localhost", ttl, signwork, p);
      unitid = String(work.unitid);
      if (follow) await this.#results(unitid);
      else {
        this.#print(`Result: ${String(work.result)}`);
        this.#print(`Unit ID: ${unitid}`);
      }
    } catch (error) {
      if (error instanceof ExitError) throw error;
      this.#error(error instanceof Error ? error.message : String(error));
      throw new ExitError(101);
    } finally {
      if (rm && unitid) await this.#opOnUnitIds("release", [unitid]);
    }
  }

  async #submitWork(
    worktype: string,
    payload: Buffer,
    node: string,
    ttl: string,
    signwork: boolean,
    params: Record<string, string>,
  ): Promise<Record<string, unknown>> {
    const conn = await this.#connect();
    const map: Record<string, string> = {
      command: "work",
      subcommand: "submit",
      node,
      worktype,
    };
    if (ttl) map.ttl = ttl;
    if (signwork) map.signwork = "true";
    for (const [k, v] of Object.entries(params)) {
      if (k in map) throw new Error(`Duplicate or illegal parameter ${k}`);
      map[k] = v;
    }
    await conn.write(`${pyDumps(map)}\n`);
    const text = await conn.readstr();
    if (!/^Work unit created with ID (.+). Send stdin data and EOF.$/.test(text)) {
      let msg = "Failed to start work unit";
      if (text.startsWith("ERROR: ")) msg += ": " + text.slice(7);
      throw new Error(msg);
    }
    if (payload.length > 0) await conn.write(payload);
    conn.socket.end(); // shutdown(SHUT_WR)
    const answer = await conn.readstr();
    this.#close();
    if (answer.startsWith("ERROR:")) throw new Error(`Remote error: ${answer}`);
    return JSON.parse(answer) as Record<string, unknown>;
  }

  async #results(unitId: string): Promise<void> {
    const conn = await this.#connect();
    await conn.write(`work results ${unitId} 0\n`);
    const text = await conn.readstr();
    if (!/^Streaming results for work unit (.+)$/.test(text)) {
      let msg = "Failed to get results";
      if (text.startsWith("ERROR: ")) msg += ": " + text.slice(7);
      throw new Error(msg);
    }
    conn.socket.end();
    this.#conn = undefined;
    for (;;) {
      const chunk = await conn.readline(256);
      if (chunk.length === 0) break;
      this.#out += chunk.toString("utf8");
    }
    conn.close();
    const status = await this.#simple(`work status ${unitId}`);
    if (status.State === 3) {
      this.#error(`Remote unit failed: ${String(status.Detail ?? "Unknown")}\n`);
      throw new ExitError(1);
    }
  }

  async #opOnUnitIds(op: string, ids: string[]): Promise<void> {
    for (const id of ids) {
      try {
        const res = Object.entries(await this.#simple(`work ${op} ${id}`))[0]!;
        this.#print(`(${String(res[1])}, ${res[0]})`);
      } catch (error) {
        this.#error(`${id}: ERROR: ${error instanceof Error ? error.message : String(error)}`);
        throw new ExitError(1);
      }
    }
  }
}
