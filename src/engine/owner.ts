/**
 * Engine identities. An engine owns the job requests it runs through a lease it renews;
 * another engine may take a request over once the lease expires — or at once when the
 * owner is a process on this same host that is no longer alive (a crashed `colony run`).
 */
import { hasExited, readProcStatSync } from "../core/proc-stat.ts";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";

export function newOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
}

/**
 * True when `owner` names a process on this host that has exited. A zombie has exited
 * too: a process killed with SIGKILL stays one until its parent reaps it, which a
 * container's PID 1 or a shell that started it in the background may do late or never
 * (then its jobs waited for their lease to expire, up to 30 s, instead of being taken
 * over at once).
 */
export function isDeadLocalOwner(owner: string | undefined): boolean {
  if (!owner) return true;
  const [host, pidText] = owner.split(":");
  if (host !== hostname()) return false;
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
  const stat = readProcStatSync(pid); // a zombie (Linux; elsewhere it cannot tell)
  return stat !== undefined && hasExited(stat);
}
