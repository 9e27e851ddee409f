import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  loadPrivateKey,
  loadPublicKey,
  signWork,
  verifyWork,
  WorkSignatureError,
} from "./work-signing.ts";

const dir = mkdtempSync(join(tmpdir(), "colony-sign-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function keyFiles(name: string): { priv: string; pub: string } {
  const pair = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const priv = join(dir, `${name}.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  writeFileSync(priv, pair.privateKey);
  writeFileSync(pub, pair.publicKey);
  return { priv, pub };
}

const refused = (fn: () => void, message: RegExp) =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WorkSignatureError);
    assert.equal((e as WorkSignatureError).status, 403);
    assert.match((e as Error).message, message);
    return true;
  });

describe("signed work (RS512 JWT)", () => {
  const main = keyFiles("main");
  const other = keyFiles("other");
  const priv = loadPrivateKey(main.priv);
  const pub = loadPublicKey(main.pub);

  it("makes receptor's token: RS512, aud = [node], exp", () => {
    const now = Date.parse("2030-01-01T00:00:00Z");
    const token = signWork(priv, "bar", 30 * 60_000, now);
    const [h, c] = token.split(".");
    assert.deepEqual(JSON.parse(Buffer.from(h!, "base64url").toString()), {
      alg: "RS512",
      typ: "JWT",
    });
    assert.deepEqual(JSON.parse(Buffer.from(c!, "base64url").toString()), {
      aud: ["bar"],
      exp: now / 1000 + 1800,
    });
    verifyWork(token, pub, "bar", now);
  });

  it("refuses missing, forged, expired and wrong-audience tokens", () => {
    const good = signWork(priv, "bar", 60_000);
    refused(() => verifyWork(undefined, pub, "bar"), /signature is empty/);
    refused(() => verifyWork("", pub, "bar"), /signature is empty/);
    refused(() => verifyWork("not.a.jwt!", pub, "bar"), /not a JWT/);
    refused(
      () => verifyWork(signWork(loadPrivateKey(other.priv), "bar", 60_000), pub, "bar"),
      /does not match/,
    );
    refused(() => verifyWork(signWork(priv, "bar", -1000), pub, "bar"), /token is expired/);
    refused(() => verifyWork(good, pub, "baz"), /audience did not match/);
    const [h, c, s] = good.split(".");
    const tampered = `${h}.${Buffer.from(JSON.stringify({ aud: ["bar"], exp: 9e9 })).toString("base64url")}.${s}`;
    refused(() => verifyWork(tampered, pub, "bar"), /does not match/);
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${c}.`;
    refused(() => verifyWork(none, pub, "bar"), /not RS512/);
    const hs = `${Buffer.from('{"alg":"HS512"}').toString("base64url")}.${c}`;
    refused(
      () =>
        verifyWork(
          `${hs}.${sign("sha512", Buffer.from(hs), loadPrivateKey(main.priv)).toString("base64url")}`,
          pub,
          "bar",
        ),
      /not RS512/,
    );
  });

  it("reads the keys openssl makes (PKCS#1 or PKCS#8 private, PKIX public)", () => {
    const key = join(dir, "openssl.pem");
    const pubFile = join(dir, "openssl.pub.pem");
    execFileSync("openssl", ["genrsa", "-traditional", "-out", key, "2048"], { stdio: "ignore" });
    execFileSync("openssl", ["rsa", "-in", key, "-pubout", "-out", pubFile], { stdio: "ignore" });
    verifyWork(signWork(loadPrivateKey(key), "n", 60_000), loadPublicKey(pubFile), "n");
    assert.throws(() => loadPrivateKey(join(dir, "missing.pem")), /cannot read/);
    assert.throws(() => loadPublicKey(main.priv + ".nope"), /cannot read/);
    writeFileSync(join(dir, "junk.pem"), "junk");
    assert.throws(() => loadPublicKey(join(dir, "junk.pem")), /not a PEM public key/);
  });
});
