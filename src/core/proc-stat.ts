/**
 * /proc/<pid>/stat (Linux): what colony reads of a process it started or whose owner it
 * checks. Elsewhere, and for a process that is gone, the readers answer undefined.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

export interface ProcStat {
  /** R, S, D, Z (zombie)... */
  state: string;
  /** Field 22: clock ticks after boot when the process started. */
  startTime: number;
  /** Field 5: its process group (the spawners make each task the leader of its own). */
  pgrp: number;
}

/** The fields of a stat line; those after "pid (comm)", as comm may hold spaces and parentheses. */
export function parseProcStat(text: string): ProcStat {
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0] ?? "", startTime: Number(rest[19]), pgrp: Number(rest[2]) };
}

export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  if (process.platform !== "linux") return undefined;
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return undefined;
  }
}

export function readProcStatSync(pid: number): ProcStat | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, "latin1"));
  } catch {
    return undefined;
  }
}

/** Whether a stat state is a process that has exited (zombie or dead). */
export function hasExited(stat: ProcStat): boolean {
  return stat.state === "Z" || stat.state === "X";
}
