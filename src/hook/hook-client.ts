/**
 * The client side of the job hook's file routes (SPEC section 9, seed 004's `upload_to`),
 * for TypeScript processes that hold a task's JOB_* variables: the `colony ant` agent
 * uploads a remote task's artifacts with it. Upload is the seed's two steps: announce
 * the md5 and the proof of possession (md5 of "WEBDA" + content), then PUT the bytes to
 * the one-time URL unless the server already had them.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Dispatcher } from "undici";
import { succeeded, undici } from "../core/http-request.ts";
import { hookHeaders } from "./hook-auth.ts";

/** The JOB_* variables of the process (docs/hook.md). */
export interface HookCredentials {
  /** JOB_HOOK: `<server>/async`. */
  hook: string;
  /** JOB_ID. */
  jobId: string;
  /** JOB_SECRET_KEY. */
  key: string;
}

/** The JOB_* variables in `env`, or undefined when the server gave none. */
export function hookCredentials(env: Record<string, string>): HookCredentials | undefined {
  const { JOB_HOOK: hook, JOB_ID: jobId, JOB_SECRET_KEY: key } = env;
  return hook && jobId && key ? { hook: hook.replace(/\/+$/, ""), jobId, key } : undefined;
}

/** md5 of the file and md5 of "WEBDA" + the file, in one read. */
async function digests(path: string): Promise<{ hash: string; challenge: string }> {
  const hash = createHash("md5");
  const challenge = createHash("md5").update("WEBDA");
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    challenge.update(chunk as Buffer);
  }
  return { hash: hash.digest("hex"), challenge: challenge.digest("hex") };
}

async function failure(response: Dispatcher.ResponseData, what: string): Promise<Error> {
  const text = await response.body.text().catch(() => "");
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: { message?: unknown } };
    const m = body.error?.message ?? body.message;
    if (typeof m === "string") message = m;
  } catch {
    // not JSON: the text itself
  }
  return new Error(`${what}: HTTP ${response.statusCode}${message ? `: ${message}` : ""}`);
}

/**
 * Uploads one file under `{store}/{JOB_ID}/{property}` with `metadata` (its `name`
 * names it). Returns whether its bytes were sent (false: the server had them already).
 * `dispatcher`: undici's, for a CA or a proxy (the ant agent's); default the global one.
 */
export async function uploadFile(
  credentials: HookCredentials,
  file: string,
  target: { store: string; property: string; metadata: Record<string, unknown> },
  signal?: AbortSignal,
  dispatcher?: Dispatcher,
): Promise<{ sent: boolean }> {
  const { hash, challenge } = await digests(file);
  const { request } = await undici();
  const announce = await request(
    `${credentials.hook}/upload/${encodeURIComponent(target.store)}/${encodeURIComponent(credentials.jobId)}/${encodeURIComponent(target.property)}`,
    {
      method: "PUT",
      headers: {
        ...hookHeaders(credentials.jobId, credentials.key),
        "content-type": "application/json",
      },
      body: JSON.stringify({ hash, challenge, metadata: target.metadata }),
      ...(signal ? { signal } : {}),
      ...(dispatcher ? { dispatcher } : {}),
    },
  );
  if (!succeeded(announce))
    throw await failure(announce, `announcing ${target.metadata.name ?? file}`);
  const answer = (await announce.body.json()) as { done?: boolean; url?: string };
  if (answer.done === true) return { sent: false };
  if (typeof answer.url !== "string") {
    throw new Error(`announcing ${file}: the hook answered neither done nor an upload URL`);
  }
  const put = await request(answer.url, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: createReadStream(file),
    ...(signal ? { signal } : {}),
    ...(dispatcher ? { dispatcher } : {}),
  });
  if (!succeeded(put)) throw await failure(put, `uploading ${target.metadata.name ?? file}`);
  await put.body.dump();
  return { sent: true };
}
