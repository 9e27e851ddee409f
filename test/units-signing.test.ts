/**
 * Signed work (seed 002): foo signs with its RSA private key (PKCS#1 PEM), bar verifies
 * with the public key (PKIX PEM) before it starts, cancels, releases or streams a unit
 * of a work type with verify_signature. Two real server processes; every bad signature
 * (missing, forged, expired, for another node) is refused over REST and over the control
 * service on TLS, while bar's own Unix socket is trusted, as receptor trusts it.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ControlClient } from "../src/units/control-client.ts";
import { loadPrivateKey, signWork } from "../src/units/work-signing.ts";
import { tempDir } from "./support/cli.ts";
import { freePort, Node, waitForUnit } from "./support/nodes.ts";
import { receptorctl } from "./support/receptorctl.ts";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.ts";

const dir = tempDir("colony-units-sign-");
let foo: Node;
let bar: Node;
let certs: TestCerts;
let barControlPort: number;
let keyFile: string;
let rogueFile: string;

function keyPair(name: string): { priv: string; pub: string } {
  const pair = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const priv = join(dir.path, `${name}private.pem`);
  const pub = join(dir.path, `${name}public.pem`);
  writeFileSync(priv, pair.privateKey);
  writeFileSync(pub, pair.publicKey);
  return { priv, pub };
}

const ctl = (node: Node, args: string[]) => receptorctl(["--socket", node.socket, ...args]);
const sign = (file: string, aud: string, ms = 60_000) => signWork(loadPrivateKey(file), aud, ms);

before(async () => {
  certs = makeTestCerts(dir.path);
  const keys = keyPair("signwork");
  keyFile = keys.priv;
  rogueFile = keyPair("rogue").priv;
  const [fooPort, barPort] = await Promise.all([freePort(), freePort()]);
  barControlPort = await freePort();
  bar = new Node(dir.path, "bar", barPort);
  bar.configure(`work_verification:
  public_key: ${keys.pub}
work_types:
  - work_type: echopayload
    command: bash
    params: "-c \\"while read -r line; do echo \${line^^}; done\\""
    verify_signature: true
  - work_type: sleepy
    command: sleep
    params: "60"
    verify_signature: true
  - work_type: open
    command: echo
    params: open
units:
  control_tcp:
    port: ${barControlPort}
    cert: ${certs.serverCert}
    key: ${certs.serverKey}
    client_ca: ${certs.caCert}
`);
  await bar.start();
  const token = await bar.token("writer", "foo");
  foo = new Node(dir.path, "foo", fooPort);
  foo.configure(`work_signing:
  private_key: ${keys.priv}
  token_expiration: 30m
peers:
  - node_id: bar
    url: ${bar.url}
    token: ${token}
units:
  remote_poll: 200ms
  remote_retry_max: 1s
`);
  await foo.start();
});

after(async () => {
  await Promise.all([foo?.stop(), bar?.stop()]);
  dir.remove();
});

describe("signed work", () => {
  it("work submit --signwork to bar is verified and runs; the payload comes back upper-cased", async () => {
    const r = await receptorctl(
      [
        "--socket",
        foo.socket,
        "work",
        "submit",
        "echopayload",
        "--node",
        "bar",
        "--signwork",
        "-p",
        "-",
        "-f",
      ],
      { stdin: "signed\nwork\n" },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "SIGNED\nWORK\n");
    const list = JSON.parse((await ctl(foo, ["work", "list"])).stdout) as Record<
      string,
      { ExtraData: { SignWork: boolean } }
    >;
    assert.ok(Object.values(list).some((u) => u.ExtraData.SignWork));
  });

  it("without --signwork, bar refuses: the submit fails with the reason", async () => {
    const r = await ctl(foo, ["work", "submit", "echopayload", "--node", "bar", "-l", "x"]);
    assert.equal(r.code, 101);
    assert.match(r.stderr, /signature is empty/);
    const list = JSON.parse((await ctl(foo, ["work", "list"])).stdout) as Record<
      string,
      { StateName: string; Detail: string }
    >;
    assert.ok(
      Object.values(list).some(
        (u) => u.StateName === "Failed" && /Error starting remote work: .*signature/.test(u.Detail),
      ),
    );
  });

  it("REST: missing, forged, expired and wrong-audience signatures are refused; a good one is accepted", async () => {
    const submit = (signature?: string) =>
      bar.api("/api/units", {
        json: { work_type: "echopayload", stdin: "hello\n" },
        ...(signature ? { headers: { "x-colony-work-signature": signature } } : {}),
      });
    const refusals: Array<[string | undefined, RegExp]> = [
      [undefined, /signature is empty/],
      [sign(rogueFile, "bar"), /does not match/],
      [sign(keyFile, "bar", -5000), /token is expired/],
      [sign(keyFile, "baz"), /audience did not match node ID/],
      ["garbage", /not a JWT/],
    ];
    for (const [signature, message] of refusals) {
      const res = await submit(signature);
      assert.equal(res.status, 403, res.text);
      const body = res.json<{ error: { code: string; message: string } }>();
      assert.equal(body.error.code, "COLONY_WORK_SIGNATURE");
      assert.match(body.error.message, message);
    }
    const ok = await submit(sign(keyFile, "bar"));
    assert.equal(ok.status, 201, ok.text);
    const unsigned = await bar.api("/api/units", { json: { work_type: "open" } });
    assert.equal(unsigned.status, 201, "types without verify_signature need no signature");
  });

  it("REST: results, cancel and release of a signed unit need a signature too", async () => {
    const created = await bar.api("/api/units", {
      json: { work_type: "sleepy" },
      headers: { "x-colony-work-signature": sign(keyFile, "bar") },
    });
    const id = created.json<{ id: string }>().id;
    assert.equal((await bar.api(`/api/units/${id}/stdout`)).status, 403);
    assert.equal((await bar.api(`/api/units/${id}/cancel`, { method: "POST" })).status, 403);
    assert.equal((await bar.api(`/api/units/${id}/release`, { method: "POST" })).status, 403);
    const wrong = { "x-colony-work-signature": sign(keyFile, "baz") };
    assert.equal(
      (await bar.api(`/api/units/${id}/cancel`, { method: "POST", headers: wrong })).status,
      403,
    );
    const good = () => ({ "x-colony-work-signature": sign(keyFile, "bar") });
    assert.equal((await bar.api(`/api/units/${id}/stdout`, { headers: good() })).status, 200);
    const cancel = await bar.api(`/api/units/${id}/cancel`, { method: "POST", headers: good() });
    assert.deepEqual(cancel.json(), { unit_id: id, result: "cancelled" });
    await waitForUnit(bar, id, (u) => u.state === "Canceled", "canceled");
    const release = await bar.api(`/api/units/${id}/release`, { method: "POST", headers: good() });
    assert.deepEqual(release.json(), { unit_id: id, result: "released" });
  });

  it("foo signs its cancel and release of a signed remote unit", async () => {
    const r = await ctl(foo, ["work", "submit", "sleepy", "--node", "bar", "--signwork", "-n"]);
    const id = /Unit ID: (\w+)/.exec(r.stdout)![1]!;
    const u = await waitForUnit(foo, id, (x) => x.state === "Running", "to run");
    const remoteId = (u.extra_data as { RemoteUnitID: string }).RemoteUnitID;
    assert.equal(
      (await ctl(foo, ["work", "cancel", id])).stdout,
      `Cancelled:\n(${id}, cancelled)\n`,
    );
    await waitForUnit(bar, remoteId, (x) => x.state === "Canceled", "canceled on bar");
    assert.equal(
      (await ctl(foo, ["work", "release", id])).stdout,
      `Released:\n(${id}, released)\n`,
    );
    assert.equal((await bar.api(`/api/units/${remoteId}`)).status, 404);
  });

  it("bar's own Unix socket is trusted (as in receptor); its TLS control service needs the signature", async () => {
    const local = await ctl(bar, ["work", "submit", "echopayload", "-l", "trusted", "-f"]);
    assert.equal(local.stdout, "TRUSTED\n");
    const client = certs.client("operator");
    const tls = { ca: certs.caCert, cert: client.cert, key: client.key };
    const address = `tls://127.0.0.1:${barControlPort}`;
    const refused = await ControlClient.connect(address, tls);
    await assert.rejects(
      refused.submit({ node: "bar", worktype: "echopayload" }, Buffer.from("x\n")),
      /signature is empty/,
    );
    const accepted = await ControlClient.connect(address, tls);
    const answer = await accepted.submit(
      { node: "bar", worktype: "echopayload", signature: sign(keyFile, "bar") },
      Buffer.from("over tls\n"),
    );
    assert.equal(answer.result, "Job Started");
    const results = await ControlClient.connect(address, tls);
    await assert.rejects(results.results(answer.unitid), /signature is empty/);
  });
});
