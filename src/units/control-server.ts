/**
 * The control service (SPEC section 7): receptor's control protocol on a Unix socket
 * (mode 0600, `{data}/control.sock` by default) and, optionally, on TCP with TLS and
 * client certificates. The unmodified `receptorctl` drives it.
 *
 * Each connection: greeting, then requests one line at a time, each answered with one
 * line; a bad line, an unknown command or an unknown unit id is answered
 * `ERROR: ...` and the connection stays usable. `work submit` reads the payload that
 * follows its "Send stdin data and EOF" line until the client half-closes; `work
 * results` streams the output until the unit ends. Both then close the connection, as
 * receptor does. Clients on the Unix socket are trusted like receptor trusts them
 * (same user: no work signatures needed); TCP clients must sign.
 */
import { existsSync, lstatSync, readFileSync, rmSync, chmodSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import net from "node:net";
import tls from "node:tls";
import { pipeline } from "node:stream/promises";
import { ColonyError } from "../core/errors.ts";
import {
  errorLine,
  greeting,
  parseRequest,
  replyLine,
  resultsHeaderLine,
  submitCreatedLine,
  goDuration,
  type ControlRequest,
} from "./control-protocol.ts";
import type { UnitManager } from "./unit-manager.ts";
import { receptorStatus } from "./unit-model.ts";

/** Longest request line accepted (a submit with large params is still far below). */
const MAX_LINE = 1024 * 1024;
const TOO_LONG = Symbol("too long");

export interface ControlTcpOptions {
  host: string;
  port: number;
  cert: string;
  key: string;
  clientCa: string;
}

export interface ControlServerOptions {
  nodeId: string;
  version: string;
  manager: UnitManager;
  socketPath: string;
  tcp?: ControlTcpOptions;
  log?: (message: string) => void;
}

export interface ControlServer {
  socketPath: string;
  /** The TCP port, when listening on TCP (0 in the config picks one). */
  tcpPort?: number;
  close(): Promise<void>;
}

export class ControlServerError extends ColonyError {
  constructor(message: string, cause?: unknown) {
    super("COLONY_CONTROL_SOCKET", message, { status: 500, cause });
  }
}

/** Reads lines, then (for a submit payload) the raw rest of the stream. */
class SocketReader {
  readonly #it: AsyncIterator<Buffer>;
  #buf: Buffer = Buffer.alloc(0);
  #eof = false;

  constructor(socket: net.Socket) {
    this.#it = (socket as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  async #more(): Promise<void> {
    const r = await this.#it.next();
    if (r.done) this.#eof = true;
    else this.#buf = this.#buf.length ? Buffer.concat([this.#buf, r.value]) : r.value;
  }

  /** The next line without `\r` and `\n`; null at EOF; TOO_LONG for a line over the limit. */
  async readLine(): Promise<string | null | typeof TOO_LONG> {
    let discarding = false;
    for (;;) {
      const nl = this.#buf.indexOf(10);
      if (nl >= 0) {
        const line = this.#buf.subarray(0, nl);
        this.#buf = this.#buf.subarray(nl + 1);
        if (discarding) return TOO_LONG;
        return line.toString("utf8").replace(/\r/g, "");
      }
      if (this.#buf.length > MAX_LINE) {
        discarding = true;
        this.#buf = Buffer.alloc(0);
      }
      if (this.#eof) {
        if (discarding) return TOO_LONG;
        if (this.#buf.length === 0) return null;
        const line = this.#buf.toString("utf8").replace(/\r/g, "");
        this.#buf = Buffer.alloc(0);
        return line; // a last request without its newline, as receptor takes it
      }
      await this.#more();
    }
  }

  /** Everything after the current position until the client half-closes. */
  async *rest(): AsyncGenerator<Buffer> {
    if (this.#buf.length > 0) {
      const first = this.#buf;
      this.#buf = Buffer.alloc(0);
      yield first;
    }
    while (!this.#eof) {
      const r = await this.#it.next();
      if (r.done) {
        this.#eof = true;
        break;
      }
      yield r.value;
    }
  }
}

function write(socket: net.Socket, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed || !socket.writable) return reject(new Error("connection closed"));
    socket.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function startControlServer(options: ControlServerOptions): Promise<ControlServer> {
  const { manager, nodeId } = options;
  const log = options.log ?? (() => undefined);
  const sockets = new Set<net.Socket>();

  async function session(socket: net.Socket, trusted: boolean): Promise<void> {
    const reader = new SocketReader(socket);
    await write(socket, greeting(nodeId));
    for (;;) {
      const line = await reader.readLine();
      if (line === null) break;
      if (line === TOO_LONG) {
        await write(socket, errorLine(`request line longer than ${MAX_LINE} bytes`));
        continue;
      }
      if (line === "") continue;
      let request: ControlRequest;
      try {
        request = parseRequest(line);
      } catch (error) {
        await write(socket, errorLine(messageOf(error)));
        continue;
      }
      let more: boolean;
      try {
        more = await handle(request, socket, reader, trusted);
      } catch (error) {
        if (socket.destroyed) return;
        await write(socket, errorLine(messageOf(error)));
        // A failed submit ends the connection: the payload that may follow its line
        // must never be read as commands. Results fail before streaming: go on.
        more = request.kind !== "work-submit";
      }
      if (!more) break;
    }
    socket.end();
  }

  /** Answers one request; false when the connection is done (submit, results). */
  async function handle(
    request: ControlRequest,
    socket: net.Socket,
    reader: SocketReader,
    trusted: boolean,
  ): Promise<boolean> {
    switch (request.kind) {
      case "status":
        await write(socket, replyLine(statusReply(request.fields)));
        return true;
      case "ping":
        await write(socket, replyLine(await ping(request.target)));
        return true;
      case "traceroute": {
        const hops: Record<string, unknown> = { "0": await ping(nodeId) };
        if (request.target !== nodeId) hops["1"] = await ping(request.target);
        for (const hop of Object.values(hops) as Record<string, unknown>[]) delete hop.Success;
        await write(socket, replyLine(hops, 2));
        return true;
      }
      case "work-list": {
        const out: Record<string, unknown> = {};
        if (request.unitId !== undefined) {
          out[request.unitId] = receptorStatus(await manager.find(request.unitId));
        } else {
          for (const unit of manager.list()) out[unit.id] = receptorStatus(unit);
        }
        await write(socket, replyLine(out, 2));
        return true;
      }
      case "work-status":
        await write(socket, replyLine(receptorStatus(await manager.find(request.unitId))));
        return true;
      case "work-cancel":
      case "work-release":
      case "work-force-release": {
        const id = request.unitId;
        if (!manager.has(id)) await manager.find(id); // unknown id: the error says so
        manager.checkSignature(id, request.signature, trusted);
        const result =
          request.kind === "work-cancel"
            ? await manager.cancel(id)
            : await manager.release(id, request.kind === "work-force-release");
        await write(socket, replyLine({ [result]: id }));
        return true;
      }
      case "work-results": {
        const id = request.unitId;
        if (!manager.has(id)) await manager.find(id);
        manager.checkSignature(id, request.signature, trusted);
        const stream = await manager.results(id, { offset: request.startPos, follow: true });
        try {
          await write(socket, resultsHeaderLine(id));
        } catch (error) {
          stream.destroy();
          throw error;
        }
        await pipeline(stream, socket).catch(() => socket.destroy());
        return false;
      }
      case "work-submit": {
        const { id } = await manager.create(
          {
            workType: request.workType,
            node: request.node,
            params: request.params,
            ...(request.ttl === undefined ? {} : { ttl: request.ttl }),
            signWork: request.signWork,
            ...(request.tlsClient === undefined ? {} : { tlsClient: request.tlsClient }),
            ...(request.signature === undefined ? {} : { signature: request.signature }),
          },
          { trusted },
        );
        await write(socket, submitCreatedLine(id));
        await manager.receiveStdin(id, reader.rest());
        const result = await manager.startUnit(id);
        await write(socket, replyLine({ result, unitid: id }));
        return false;
      }
    }
  }

  function statusReply(fields: string[] | undefined): Record<string, unknown> {
    const peers = [...manager.peers.keys()];
    const getters: Record<string, () => unknown> = {
      NodeID: () => nodeId,
      Version: () => options.version,
      SystemCPUCount: () => cpus().length,
      SystemMemoryMiB: () => Math.floor(totalmem() / 2 ** 20),
      Connections: () => peers.map((p) => ({ NodeID: p, Cost: 1 })),
      RoutingTable: () => Object.fromEntries(peers.map((p) => [p, p])),
      Advertisements: () => [
        {
          NodeID: nodeId,
          Service: "control",
          Time: new Date().toISOString(),
          ConnType: 1,
          Tags: null,
          WorkCommands: [...manager.workTypes.values()].map((w) => ({
            WorkType: w.name,
            Secure: w.verifySignature,
          })),
        },
      ],
      KnownConnectionCosts: () =>
        Object.fromEntries([[nodeId, Object.fromEntries(peers.map((p) => [p, 1]))]]),
    };
    const out: Record<string, unknown> = {};
    for (const field of fields ?? Object.keys(getters)) {
      const get = getters[field];
      if (get) out[field] = get();
    }
    return out;
  }

  async function ping(target: string): Promise<Record<string, unknown>> {
    const started = process.hrtime.bigint();
    const elapsed = () => Number(process.hrtime.bigint() - started);
    if (manager.isLocal(target)) {
      const ns = elapsed();
      return { Success: true, From: nodeId, Time: ns, TimeStr: goDuration(ns) };
    }
    const peer = manager.peers.get(target);
    if (!peer) {
      return { Success: false, Error: `no route to node ${target}: it is not among the peers` };
    }
    try {
      const health = await peer.health();
      const ns = elapsed();
      return { Success: true, From: health.node_id, Time: ns, TimeStr: goDuration(ns) };
    } catch (error) {
      const ns = elapsed();
      return {
        Success: false,
        From: target,
        Time: ns,
        TimeStr: goDuration(ns),
        Error: messageOf(error),
      };
    }
  }

  function accept(socket: net.Socket, trusted: boolean): void {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
    session(socket, trusted).catch((error: unknown) => {
      log(`control connection: ${messageOf(error)}`);
      socket.destroy();
    });
  }

  const unix = net.createServer({ allowHalfOpen: true }, (socket) => accept(socket, true));
  await listenUnix(unix, options.socketPath);

  let tcpServer: tls.Server | undefined;
  let tcpPort: number | undefined;
  if (options.tcp) {
    const t = options.tcp;
    const read = (what: string, path: string) => {
      try {
        return readFileSync(path);
      } catch (error) {
        throw new ControlServerError(
          `control_tcp.${what}: cannot read ${path}: ${messageOf(error)}`,
        );
      }
    };
    tcpServer = tls.createServer(
      {
        cert: read("cert", t.cert),
        key: read("key", t.key),
        ca: read("client_ca", t.clientCa),
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: "TLSv1.2",
        allowHalfOpen: true,
      },
      (socket) => accept(socket, false),
    );
    tcpServer.on("tlsClientError", () => undefined);
    const server = tcpServer;
    await new Promise<void>((resolve, reject) => {
      server.once("error", (error) =>
        reject(
          new ControlServerError(
            `control_tcp: cannot listen on ${t.host}:${t.port}: ${messageOf(error)}`,
            error,
          ),
        ),
      );
      server.listen(t.port, t.host, () => resolve());
    });
    tcpPort = (server.address() as net.AddressInfo).port;
  }

  return {
    socketPath: options.socketPath,
    ...(tcpPort === undefined ? {} : { tcpPort }),
    async close() {
      const closed = [
        new Promise<void>((resolve) => unix.close(() => resolve())),
        tcpServer ? new Promise<void>((resolve) => tcpServer!.close(() => resolve())) : undefined,
      ];
      for (const socket of sockets) socket.destroy();
      await Promise.all(closed);
      rmSync(options.socketPath, { force: true });
    },
  };
}

/** Listens on a Unix socket path that only this user can use (mode 0600). */
async function listenUnix(server: net.Server, path: string): Promise<void> {
  if (Buffer.byteLength(path) > 107) {
    throw new ControlServerError(
      `control_socket: ${path} is longer than the 107 bytes a Unix socket path may have; set a shorter control_socket`,
    );
  }
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) {
      throw new ControlServerError(
        `control_socket: ${path} exists and is not a socket; remove it or set another control_socket`,
      );
    }
    if (await isListening(path)) {
      throw new ControlServerError(
        `control_socket: another process listens on ${path}; stop it or set another control_socket`,
      );
    }
    rmSync(path, { force: true }); // left by a server that died
  }
  const listening = new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new ControlServerError(
          `control_socket: cannot listen on ${path}: ${messageOf(error)}`,
          error,
        ),
      ),
    );
    server.once("listening", () => resolve());
  });
  // The socket file gets the umask's mode: make it 0600 from the first moment. Node
  // binds synchronously inside listen(), so the umask is back before anything else runs.
  const previous = process.umask(0o177);
  try {
    server.listen(path);
  } finally {
    process.umask(previous);
  }
  await listening;
  chmodSync(path, 0o600);
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}
