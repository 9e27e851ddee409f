/**
 * Finds the system services a test needs. Without CI, a test whose service is absent
 * skips with a one-line reason; under CI=true an absent service fails the run
 * (.ci/run starts every service, so absence there is a bug, not an excuse).
 */
import { connect } from "node:net";

const CI = process.env.CI === "true" || process.env.CI === "1";

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
