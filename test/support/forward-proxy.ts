/**
 * A forward proxy on loopback for tests (real sockets): it forwards absolute-URI requests,
 * tunnels CONNECT, can ask for Basic credentials, logs what it was asked, and resolves
 * the name `origin.test` to 127.0.0.1, as a proxy's own DNS would resolve a name the
 * machine running colony cannot (the test certificates are valid for that name).
 */
import { createServer, request as forward, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";

export const ORIGIN = "origin.test";

export interface Proxy {
  url: string;
  /** What it was asked: `GET http://…` or `CONNECT host:port`. */
  log: string[];
  server: Server;
  /** Closes it, and every tunnel still open through it. */
  close(): Promise<void>;
}

/** A forward proxy on 127.0.0.1; with `credentials` ("user:password") it wants them. */
export async function startProxy(credentials?: string): Promise<Proxy> {
  const log: string[] = [];
  const tunnels = new Set<Socket>();
  const wanted = credentials && `Basic ${Buffer.from(credentials).toString("base64")}`;
  const allowed = (req: IncomingMessage) =>
    !wanted || req.headers["proxy-authorization"] === wanted;
  const resolve = (host: string) => (host === ORIGIN ? "127.0.0.1" : host);
  const server = createServer((req, res) => {
    if (!allowed(req)) {
      res.writeHead(407, { "proxy-authenticate": 'Basic realm="test"' }).end();
      return;
    }
    log.push(`${req.method} ${req.url}`);
    const target = new URL(req.url ?? "");
    const headers = { ...req.headers };
    delete headers["proxy-authorization"];
    const upstream = forward(
      {
        host: resolve(target.hostname),
        port: target.port,
        path: target.pathname + target.search,
        method: req.method,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    client.on("error", () => undefined);
    if (!allowed(req)) {
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n',
      );
      return;
    }
    log.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? "").split(":");
    const upstream = connect(Number(port), resolve(host!), () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.end("HTTP/1.1 502 Bad Gateway\r\n\r\n"));
    // One end gone, the other goes too (a tunnel's sockets are no longer the server's).
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      tunnels.add(a);
      a.once("close", () => {
        tunnels.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const user = credentials ? `${credentials}@` : "";
  return {
    url: `http://${user}127.0.0.1:${port}`,
    log,
    server,
    close: () => {
      for (const socket of tunnels) socket.destroy();
      return stop(server);
    },
  };
}

export function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}
