/**
 * Finds the system services a test needs. Without CI, a test whose service is absent
 * skips with a one-line reason; under CI=true an absent service fails the run
 * (.ci/run starts every service, so absence there is a bug, not an excuse).
 */
import { connect } from "node:net";

export const CI = process.env.CI === "true" || process.env.CI === "1";

async function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

export interface ServiceCheck {
  /** The service's URL, or undefined when it is absent (and the caller must skip). */
  url: string | undefined;
  /** One line saying why it is absent and how to start it. */
  reason: string;
}

async function check(name: string, envVar: string, fallback: string): Promise<ServiceCheck> {
  const url = process.env[envVar] ?? fallback;
  const parsed = new URL(url);
  const ok = await reachable(parsed.hostname, Number(parsed.port));
  const reason = `${name} not reachable at ${parsed.host} (start it with scripts/test-services.sh or set ${envVar})`;
  if (!ok && CI) throw new Error(`CI=true but ${reason}`);
  return { url: ok ? url : undefined, reason };
}

export function postgres(): Promise<ServiceCheck> {
  return check(
    "PostgreSQL",
    "COLONY_TEST_PG_URL",
    "postgres://colony:colony@127.0.0.1:5432/colony_test",
  );
}

export function redis(): Promise<ServiceCheck> {
  return check("Redis", "COLONY_TEST_REDIS_URL", "redis://127.0.0.1:6379");
}

/** GET /_ping on a Unix socket: true when a Docker engine answers OK. */
async function dockerPing(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  const { request } = await import("node:http");
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(res.statusCode === 200 && body.trim() === "OK"));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

/**
 * The Docker engine (socket path in `url`) with the test image colony-test/busybox
 * imported (scripts/test-docker.sh does both).
 */
export async function docker(): Promise<ServiceCheck & { image: string }> {
  const socketPath = process.env.COLONY_TEST_DOCKER_SOCKET ?? "/var/run/docker.sock";
  const image = process.env.COLONY_TEST_DOCKER_IMAGE ?? "colony-test/busybox:latest";
  let reason = `Docker engine not reachable at ${socketPath} (start it with scripts/test-docker.sh)`;
  let ok = await dockerPing(socketPath);
  if (ok) {
    const { request } = await import("node:http");
    ok = await new Promise<boolean>((resolve) => {
      const req = request(
        { socketPath, path: `/images/${encodeURIComponent(image)}/json` },
        (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        },
      );
      req.on("error", () => resolve(false));
      req.end();
    });
    if (!ok) reason = `test image ${image} is missing (build it with scripts/test-docker.sh)`;
  }
  if (!ok && CI) throw new Error(`CI=true but ${reason}`);
  return { url: ok ? socketPath : undefined, reason, image };
}
