/**
 * Typed events: every state change the engine records is also published here, for
 * live views (CLI progress, API streams, dashboard, metrics).
 */
import { EventEmitter } from "node:events";
import type { State } from "./states.ts";

export interface ColonyEvents {
  "job:state": [
    { jobRequestId: number; jobType: string; state: State; attempt: number; error?: string },
  ];
  "task:state": [
    {
      jobRequestId: number;
      taskType: string;
      executionId: string;
      state: State;
      attempt: number;
      /** The task's method (SHELL, HTTP...). */
      method?: string;
      exitCode?: number;
      error?: string;
    },
  ];
  "task:output": [{ jobRequestId: number; taskType: string; executionId: string; chunk: Buffer }];
  /** A running task's own progress report (FUNCTION handlers' ctx.progress). */
  "task:progress": [
    {
      jobRequestId: number;
      taskType: string;
      executionId: string;
      progress: number;
      message?: string;
    },
  ];
}

export type EventName = keyof ColonyEvents;

export class ColonyEventBus extends EventEmitter<ColonyEvents> {
  constructor() {
    super();
    // Many followers (CLI, API streams) may subscribe; a leak warning at 10 is noise here.
    this.setMaxListeners(0);
  }
}
