/**
 * Signed work (seed 002 "Signed work"): the submitting node signs each request about a
 * unit of a verifying work type with its RSA private key; the target node verifies it
 * with the matching public key before it starts, cancels, releases or streams the unit.
 *
 * The signature is a JSON Web Token as receptor makes it: RS512 (RSASSA-PKCS1-v1_5 with
 * SHA-512), claims `exp` (now + token_expiration) and `aud` = [target node id], nothing
 * else. Keys are PEM files: the private key PKCS#1 (`openssl genrsa`; PKCS#8 is also
 * read), the public key PKIX/SPKI (`openssl rsa -pubout`). Only node:crypto is used.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { ColonyError } from "../core/errors.ts";

export const WORK_SIGNATURE = "COLONY_WORK_SIGNATURE";
/** The HTTP header that carries a signature to a peer's REST API. */
export const SIGNATURE_HEADER = "x-colony-work-signature";

/** A signature is missing, malformed, forged, expired or for another node. */
export class WorkSignatureError extends ColonyError {
  constructor(message: string) {
    super(WORK_SIGNATURE, message, { status: 403 });
  }
}

export class SigningKeyError extends ColonyError {
  constructor(message: string) {
    super("COLONY_SIGNING_KEY", message, { status: 400 });
  }
}

export function loadPrivateKey(path: string): KeyObject {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    throw new SigningKeyError(
      `work_signing.private_key: cannot read ${path}: ${(error as Error).message}`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new SigningKeyError(
      `work_signing.private_key: ${path} is not a PEM private key (${(error as Error).message}); ` +
        "make one with: openssl genrsa -out signworkprivate.pem 2048",
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new SigningKeyError(
      `work_signing.private_key: ${path} is a ${key.asymmetricKeyType} key; RS512 needs an RSA key`,
    );
  }
  return key;
}

export function loadPublicKey(path: string): KeyObject {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    throw new SigningKeyError(
      `work_verification.public_key: cannot read ${path}: ${(error as Error).message}`,
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new SigningKeyError(
      `work_verification.public_key: ${path} is not a PEM public key (${(error as Error).message}); ` +
        "make it with: openssl rsa -in signworkprivate.pem -pubout -out signworkpublic.pem",
    );
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new SigningKeyError(
      `work_verification.public_key: ${path} is a ${key.asymmetricKeyType} key; RS512 needs an RSA key`,
    );
  }
  return key;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

const HEADER = b64url(JSON.stringify({ alg: "RS512", typ: "JWT" }));

/** A fresh token for `audience` (the target node id), valid for `expiresInMs`. */
export function signWork(
  privateKey: KeyObject,
  audience: string,
  expiresInMs: number,
  now: number = Date.now(),
): string {
  const claims = { aud: [audience], exp: Math.floor((now + expiresInMs) / 1000) };
  const input = `${HEADER}.${b64url(JSON.stringify(claims))}`;
  const signature = sign("sha512", Buffer.from(input), privateKey);
  return `${input}.${b64url(signature)}`;
}

/**
 * Checks a token against this node: RS512, signed by the key, not expired (`exp`
 * required), not before `nbf`, and `aud` names `nodeId`. Throws WorkSignatureError
 * saying which check failed.
 */
export function verifyWork(
  token: string | undefined,
  publicKey: KeyObject,
  nodeId: string,
  now: number = Date.now(),
): void {
  if (token === undefined || token === "") {
    throw new WorkSignatureError(
      "could not verify signature: signature is empty; this work type accepts only signed work (submit with --signwork from a node whose work_signing key this node trusts)",
    );
  }
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p))) {
    throw new WorkSignatureError("could not verify signature: the token is not a JWT");
  }
  const [h, c, s] = parts as [string, string, string];
  let header: { alg?: unknown };
  let claims: { exp?: unknown; nbf?: unknown; aud?: unknown };
  try {
    header = JSON.parse(Buffer.from(h, "base64url").toString("utf8")) as typeof header;
    claims = JSON.parse(Buffer.from(c, "base64url").toString("utf8")) as typeof claims;
  } catch {
    throw new WorkSignatureError("could not verify signature: the token is not a JWT");
  }
  if (header.alg !== "RS512") {
    throw new WorkSignatureError(
      `could not verify signature: signing method ${String(header.alg)} is not RS512`,
    );
  }
  let good = false;
  try {
    good = verify("sha512", Buffer.from(`${h}.${c}`), publicKey, Buffer.from(s, "base64url"));
  } catch {
    good = false;
  }
  if (!good) {
    throw new WorkSignatureError(
      "could not verify signature: the signature does not match this node's work_verification key",
    );
  }
  const seconds = now / 1000;
  if (typeof claims.exp !== "number") {
    throw new WorkSignatureError("could not verify signature: the token has no expiry (exp)");
  }
  if (seconds >= claims.exp) {
    throw new WorkSignatureError(
      `could not verify signature: token is expired (at ${new Date(claims.exp * 1000).toISOString()})`,
    );
  }
  if (typeof claims.nbf === "number" && seconds < claims.nbf) {
    throw new WorkSignatureError("could not verify signature: token is not valid yet");
  }
  const aud = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!aud.includes(nodeId)) {
    throw new WorkSignatureError(
      `token audience did not match node ID: it is for ${JSON.stringify(claims.aud ?? null)}, this node is '${nodeId}'`,
    );
  }
}
