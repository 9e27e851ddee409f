/**
 * Test certificates made with the real `openssl` into a temp dir: a CA, a server
 * certificate for localhost/127.0.0.1 (and origin.test, the name test/http-proxy.test.ts
 * calls through its proxy), client certificates it signs, and a second CA
 * with a client certificate of its own (one the server must refuse).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { join } from "node:path";

export interface TestCerts {
  dir: string;
  caCert: string;
  /** The other CA: it signed foreignClient's certificates, nothing the server presents. */
  otherCaCert: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate with CN `cn`, signed by the CA. */
  client(cn: string): { cert: string; key: string };
  /** A client certificate with CN `cn`, signed by another CA the server does not trust. */
  foreignClient(cn: string): { cert: string; key: string };
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { cert, key };
}

function signed(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  cn: string,
  extensions: string,
): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    `/CN=${cn}`,
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "2",
    "-extfile",
    ext,
  ]);
  return { cert, key };
}

export function makeTestCerts(dir: string): TestCerts {
  const ca = makeCa(dir, "test-ca");
  const other = makeCa(dir, "other-ca");
  const server = signed(
    dir,
    ca,
    "server",
    "localhost",
    "subjectAltName=DNS:localhost,DNS:origin.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
  );
  let n = 0;
  const client = (authority: { cert: string; key: string }, cn: string) =>
    signed(dir, authority, `client-${++n}`, cn, "extendedKeyUsage=clientAuth\n");
  return {
    dir,
    caCert: ca.cert,
    otherCaCert: other.cert,
    serverCert: server.cert,
    serverKey: server.key,
    client: (cn) => client(ca, cn),
    foreignClient: (cn) => client(other, cn),
  };
}

/**
 * An https server on 127.0.0.1 with the test CA's server certificate that wants a client
 * certificate signed by that CA (it refuses others and none), answering each request with
 * the client certificate's CN and the Host it was called by, as JSON.
 */
export async function startClientCertServer(
  certs: TestCerts,
): Promise<{ server: Server; port: number }> {
  const server = createServer(
    {
      cert: readFileSync(certs.serverCert),
      key: readFileSync(certs.serverKey),
      ca: readFileSync(certs.caCert),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ client: peer.subject.CN, host: req.headers.host }));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
