/**
 * A client of the control service (what `colony work` and the benches use): the same
 * protocol receptorctl speaks, over a Unix socket (`path`, `unix:path`) or TCP with TLS
 * (`tls://host:port`, with client certificate). One connection per client; `submit` and
 * `results` use theirs up, as the protocol does.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { Readable } from "node:stream";
import tls from "node:tls";
import { ColonyError } from "../core/errors.ts";

export class ControlError extends ColonyError {
  constructor(message: string, code = "COLONY_CONTROL_ERROR") {
    super(code, message, { status: 400 });
  }
}

export interface ControlConnectOptions {
  /** tls:// addresses: PEM files of the CA to trust and the client certificate. */
  ca?: string;
  cert?: string;
  key?: string;
}

export class ControlClient {
  readonly nodeId: string;
  readonly #socket: net.Socket;
  readonly #it: AsyncIterator<Buffer>;
  #buf: Buffer = Buffer.alloc(0);

  private constructor(socket: net.Socket, nodeId: string, it: AsyncIterator<Buffer>, buf: Buffer) {
    this.#socket = socket;
    this.nodeId = nodeId;
    this.#it = it;
    this.#buf = buf;
  }

  static async connect(
    address: string,
    options: ControlConnectOptions = {},
  ): Promise<ControlClient> {
    const socket = await open(address, options);
    const it = (socket as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const reader = { buf: Buffer.alloc(0) };
    const line = await readLine(it, reader);
    const m = line === null ? null : /^Receptor Control, node (.+)$/.exec(line);
    if (!m) {
      socket.destroy();
      throw new ControlError(
        `${address} did not greet as a control service${line === null ? "" : ` (it said '${line.slice(0, 80)}')`}`,
      );
    }
    return new ControlClient(socket, m[1]!, it, reader.buf);
  }

  async #readLine(): Promise<string | null> {
    const reader = { buf: this.#buf };
    const line = await readLine(this.#it, reader);
    this.#buf = reader.buf;
    return line;
  }

  async #write(text: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#socket.write(text, (error) => (error ? reject(error) : resolve())),
    );
  }

  /** Sends one request line; resolves with the parsed JSON answer, or throws its ERROR. */
  async command(line: string): Promise<Record<string, unknown>> {
    await this.#write(line.endsWith("\n") ? line : `${line}\n`);
    const answer = await this.#readLine();
    if (answer === null) throw new ControlError("the control service closed the connection");
    if (answer.startsWith("ERROR:")) throw new ControlError(answer.slice(7));
    return JSON.parse(answer) as Record<string, unknown>;
  }

  /**
   * `work submit` as receptorctl does it: the JSON request, the payload, half-close,
   * then the answer `{unitid, result}`. The connection is done afterwards.
   */
  async submit(
    request: Record<string, string>,
    payload: Buffer | AsyncIterable<Buffer> | undefined,
  ): Promise<{ unitid: string; result: string }> {
    await this.#write(JSON.stringify({ command: "work", subcommand: "submit", ...request }) + "\n");
    const created = await this.#readLine();
    const m =
      created === null
        ? null
        : /^Work unit created with ID (.+)\. Send stdin data and EOF\.$/.exec(created);
    if (!m) {
      this.close();
      throw new ControlError(
        created?.startsWith("ERROR: ")
          ? `Failed to start work unit: ${created.slice(7)}`
          : "Failed to start work unit",
      );
    }
    if (Buffer.isBuffer(payload)) await this.#write(payload);
    else if (payload) for await (const chunk of payload) await this.#write(chunk);
    this.#socket.end();
    const answer = await this.#readLine();
    this.close();
    if (answer === null) throw new ControlError("the control service closed the connection");
    if (answer.startsWith("ERROR:")) throw new ControlError(`Remote error: ${answer}`);
    return JSON.parse(answer) as { unitid: string; result: string };
  }

  /** `work results`: the unit's output from `startPos`, until it ends. */
  async results(unitId: string, startPos = 0): Promise<Readable> {
    await this.#write(`work results ${unitId} ${startPos}\n`);
    const header = await this.#readLine();
    if (header === null || !/^Streaming results for work unit .+$/.test(header)) {
      this.close();
      throw new ControlError(
        header?.startsWith("ERROR: ")
          ? `Failed to get results: ${header.slice(7)}`
          : "Failed to get results",
      );
    }
    this.#socket.end();
    const rest = this.#buf;
    this.#buf = Buffer.alloc(0);
    const it = this.#it;
    const socket = this.#socket;
    return Readable.from(
      (async function* () {
        try {
          if (rest.length > 0) yield rest;
          for (;;) {
            const r = await it.next();
            if (r.done) return;
            yield r.value;
          }
        } finally {
          socket.destroy();
        }
      })(),
      { objectMode: false },
    );
  }

  close(): void {
    this.#socket.destroy();
  }
}

async function readLine(
  it: AsyncIterator<Buffer>,
  reader: { buf: Buffer },
): Promise<string | null> {
  for (;;) {
    const nl = reader.buf.indexOf(10);
    if (nl >= 0) {
      const line = reader.buf.subarray(0, nl).toString("utf8").replace(/\r$/, "");
      reader.buf = reader.buf.subarray(nl + 1);
      return line;
    }
    const r = await it.next();
    if (r.done) {
      if (reader.buf.length === 0) return null;
      const line = reader.buf.toString("utf8");
      reader.buf = Buffer.alloc(0);
      return line;
    }
    reader.buf = reader.buf.length ? Buffer.concat([reader.buf, r.value]) : r.value;
  }
}

function open(address: string, options: ControlConnectOptions): Promise<net.Socket> {
  const m = /^(tcp|tls):(?:\/\/)?([A-Za-z0-9.:[\]-]+):(\d+)$/.exec(address);
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    if (m) {
      const host = m[2]!.replace(/^\[|\]$/g, "");
      const port = Number(m[3]);
      if (m[1] === "tls") {
        socket = tls.connect({
          host,
          port,
          servername: net.isIP(host) ? undefined : host,
          ca: options.ca ? readFileSync(options.ca) : undefined,
          cert: options.cert ? readFileSync(options.cert) : undefined,
          key: options.key ? readFileSync(options.key) : undefined,
        });
        socket.once("secureConnect", () => resolve(socket));
      } else {
        socket = net.connect({ host, port, allowHalfOpen: true });
        socket.once("connect", () => resolve(socket));
      }
    } else {
      const path = address.replace(/^unix:(\/\/)?/, "");
      socket = net.connect({ path, allowHalfOpen: true });
      socket.once("connect", () => resolve(socket));
    }
    socket.once("error", (error: NodeJS.ErrnoException) => {
      reject(
        new ControlError(
          error.code === "ENOENT" || error.code === "ECONNREFUSED"
            ? `no control service at ${address} (${error.code}); is 'colony server' running? Pass --socket or --config`
            : `cannot connect to ${address}: ${error.message}`,
          "COLONY_UNREACHABLE",
        ),
      );
    });
  });
}
