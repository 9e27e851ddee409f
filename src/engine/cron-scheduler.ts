/**
 * Fires job types on their cron_trigger (SPEC section 2; seed 004's cron). Schedules
 * live in the store (one per job type with a cron_trigger, kept in step with the saved
 * definitions by sync()); each remembers the cron time it last fired at.
 *
 * - On time: the scheduler sleeps until the soonest next cron time, then inserts the
 *   job request (scheduled at that cron time) and wakes the engine.
 * - Never twice: a firing is claimed by a compare-and-set on the schedule's last fired
 *   time, in the same store transaction that inserts the request. Two servers on one
 *   PostgreSQL, or a server restarted in the middle of a tick, cannot fire one time twice.
 * - One catch-up: after downtime, the missed times collapse into one run, for the
 *   latest missed time; the schedule then continues from there.
 * - Testable: the clock is injected (`now`); tests call sync() and tick() directly.
 */
import { FailureLog } from "../core/failure-log.ts";
import { CronSchedule, parseCronTrigger, type CronTrigger } from "../core/cron.ts";
import { NotFoundError } from "../core/errors.ts";
import type { ColonyEventBus } from "../core/events.ts";
import type { JobRequest } from "../core/job-request.ts";
import type { Schedule } from "../store/async-action-store.ts";
import type { Store } from "../store/store.ts";

export interface CronSchedulerOptions {
  store: Store;
  /** Woken after a firing so the request is claimed at once (Engine.wake). */
  engine?: { wake(): void };
  /** Where new requests are announced (`job:state` PENDING), as Engine.submit does. */
  events?: ColonyEventBus;
  /** The clock (default: real time). */
  now?: () => Date;
  /** Zone for cron_trigger without CRON_TZ= (default: the machine's). */
  defaultTimezone?: string;
  /** How often saved definitions are compared with the schedules (default 2 s). */
  syncEveryMs?: number;
  log?: (message: string) => void;
}

/** A schedule as the API shows it. */
export interface ScheduleInfo extends Schedule {
  /** The definition's cron_trigger as written. */
  cronTrigger: string;
  /** The zone it is evaluated in (the CRON_TZ= prefix or the default), if any. */
  effectiveTimezone?: string;
  /** The next cron time after the last firing (what fires next; may be in the past while it is due). */
  nextFireAt?: Date;
}

interface Entry {
  schedule: Schedule;
  compiled: CronSchedule | undefined;
  maxConcurrency?: number;
}

export class CronScheduler {
  readonly #o: CronSchedulerOptions & { now: () => Date; syncEveryMs: number };
  readonly #entries = new Map<string, Entry>();
  /** Definition versions seen by the last sync, to re-read only what changed. */
  readonly #versions = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #lastSync = -Infinity;
  #loop: Promise<void> | undefined;
  readonly #failures: FailureLog;
  /** After a failed cycle (the store down): the wait before the next, doubling to 10 s. */
  #backoffMs = 0;

  constructor(options: CronSchedulerOptions) {
    this.#o = { syncEveryMs: 2000, now: () => new Date(), ...options };
    this.#failures = new FailureLog((m) => this.#log(m));
  }

  #log(message: string): void {
    this.#o.log?.(message);
  }

  #compile(schedule: Schedule): CronSchedule | undefined {
    try {
      return new CronSchedule(
        schedule.timezone === undefined
          ? { cron: schedule.cron }
          : { cron: schedule.cron, timezone: schedule.timezone },
        this.#o.defaultTimezone,
      );
    } catch (error) {
      this.#log(
        `schedule of ${schedule.jobType}: cannot evaluate '${schedule.cron}': ${String(error)}`,
      );
      return undefined;
    }
  }

  #remember(schedule: Schedule, maxConcurrency?: number): void {
    const known = this.#entries.get(schedule.jobType);
    const same =
      known &&
      known.schedule.cron === schedule.cron &&
      known.schedule.timezone === schedule.timezone;
    this.#entries.set(schedule.jobType, {
      schedule,
      compiled: same ? known.compiled : this.#compile(schedule),
      maxConcurrency: maxConcurrency ?? known?.maxConcurrency,
    });
  }

  /**
   * Brings the schedules in line with the saved definitions: one per job type with a
   * cron_trigger (a changed trigger keeps the last firing; a new schedule starts now),
   * none for the others. Then re-reads every schedule (pauses and firings by others).
   */
  async sync(): Promise<void> {
    const store = this.#o.store;
    const a = store.asyncActions;
    const versions = await a.definitionVersions();
    const present = new Set(versions.map((v) => v.jobType));
    const schedules = new Map((await a.listSchedules()).map((s) => [s.jobType, s]));
    for (const { jobType, version } of versions) {
      if (
        this.#versions.get(jobType) === version &&
        (schedules.has(jobType) || !this.#entries.has(jobType))
      )
        continue;
      const stored = await store.getDefinition(jobType);
      if (!stored) continue;
      this.#versions.set(jobType, stored.version);
      let trigger: CronTrigger | undefined;
      if (stored.definition.cronTrigger) {
        try {
          trigger = parseCronTrigger(stored.definition.cronTrigger);
        } catch (error) {
          this.#log(`job type ${jobType}: ignoring its cron_trigger: ${(error as Error).message}`);
        }
      }
      if (trigger) {
        const saved = await a.upsertSchedule({ jobType, ...trigger }, this.#o.now());
        schedules.set(jobType, saved);
        this.#remember(saved, stored.definition.maxConcurrency);
      } else if (schedules.has(jobType)) {
        await a.deleteSchedule(jobType);
        schedules.delete(jobType);
      }
    }
    for (const jobType of schedules.keys()) {
      if (!present.has(jobType)) {
        await a.deleteSchedule(jobType);
        schedules.delete(jobType);
      }
    }
    for (const jobType of this.#versions.keys())
      if (!present.has(jobType)) this.#versions.delete(jobType);
    for (const jobType of this.#entries.keys())
      if (!schedules.has(jobType)) this.#entries.delete(jobType);
    for (const schedule of schedules.values()) this.#remember(schedule);
    this.#lastSync = this.#o.now().getTime();
  }

  /**
   * Fires every schedule that is due at now(): once, for its latest due cron time.
   * Returns the requests it inserted.
   */
  async tick(): Promise<JobRequest[]> {
    const now = this.#o.now();
    const fired: JobRequest[] = [];
    for (const entry of [...this.#entries.values()]) {
      const { schedule, compiled } = entry;
      if (schedule.paused || !compiled) continue;
      const next = compiled.next(schedule.lastFiredAt);
      if (!next || next.getTime() > now.getTime()) continue;
      const fireAt = compiled.latest(now) ?? next;
      const result = await this.#o.store.asyncActions.fireSchedule(
        schedule.jobType,
        schedule.lastFiredAt,
        fireAt,
        {
          params: {},
          ...(entry.maxConcurrency === undefined ? {} : { maxConcurrency: entry.maxConcurrency }),
        },
      );
      if (result.schedule) this.#remember(result.schedule);
      else this.#entries.delete(schedule.jobType);
      if (!result.fired || !result.jobRequest) continue;
      const job = result.jobRequest;
      fired.push(job);
      if (fireAt.getTime() > next.getTime()) {
        this.#log(
          `${schedule.jobType}: missed cron times since ${next.toISOString()}; ran once for ${fireAt.toISOString()}`,
        );
      }
      this.#o.events?.emit("job:state", {
        jobRequestId: job.id,
        jobType: job.jobType,
        state: job.state,
        attempt: 0,
      });
    }
    if (fired.length > 0) this.#o.engine?.wake();
    return fired;
  }

  /** The soonest next cron time of any running schedule. */
  #soonest(): number | undefined {
    let soonest: number | undefined;
    for (const { schedule, compiled } of this.#entries.values()) {
      if (schedule.paused || !compiled) continue;
      const next = compiled.next(schedule.lastFiredAt)?.getTime();
      if (next !== undefined && (soonest === undefined || next < soonest)) soonest = next;
    }
    return soonest;
  }

  /** Syncs, then fires schedules on time until stop(). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.sync();
    this.#arm(0);
  }

  #arm(delayMs: number): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.#loop = this.#cycle().finally(() => (this.#loop = undefined));
    }, delayMs);
    this.#timer.unref();
  }

  async #cycle(): Promise<void> {
    try {
      if (this.#o.now().getTime() - this.#lastSync >= this.#o.syncEveryMs) await this.sync();
      await this.tick();
      this.#failures.ok("schedules");
      this.#backoffMs = 0;
    } catch (error) {
      // Logged once; tried again after 0.5 s, doubling to 10 s (it was every 5 ms).
      this.#failures.failed("schedules", error);
      this.#backoffMs = Math.min(Math.max(this.#backoffMs * 2, 500), 10_000);
      this.#arm(this.#backoffMs);
      return;
    }
    const now = this.#o.now().getTime();
    const soonest = this.#soonest();
    const untilSync = this.#lastSync + this.#o.syncEveryMs - now;
    const untilFire = soonest === undefined ? Infinity : soonest - now;
    this.#arm(Math.max(5, Math.min(untilSync, untilFire)));
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#loop;
  }

  // -- the schedules resource ------------------------------------------------------------

  async list(): Promise<ScheduleInfo[]> {
    await this.sync();
    const out: ScheduleInfo[] = [];
    for (const schedule of await this.#o.store.asyncActions.listSchedules())
      out.push(await this.#info(schedule));
    return out;
  }

  async get(jobType: string): Promise<ScheduleInfo> {
    await this.sync();
    const schedule = await this.#o.store.asyncActions.getSchedule(jobType);
    if (!schedule)
      throw new NotFoundError("schedule", jobType, "give its job definition a cron_trigger");
    return this.#info(schedule);
  }

  /** Pauses (nothing fires) or resumes (from now: times missed while paused do not fire). */
  async setPaused(jobType: string, paused: boolean): Promise<ScheduleInfo> {
    await this.sync();
    const schedule = await this.#o.store.asyncActions.setSchedulePaused(
      jobType,
      paused,
      this.#o.now(),
    );
    if (!schedule)
      throw new NotFoundError("schedule", jobType, "give its job definition a cron_trigger");
    this.#remember(schedule);
    if (this.#running && this.#timer && !this.#loop) {
      clearTimeout(this.#timer);
      this.#arm(0);
    }
    return this.#info(schedule);
  }

  async #info(schedule: Schedule): Promise<ScheduleInfo> {
    const entry = this.#entries.get(schedule.jobType);
    const compiled = entry?.compiled ?? this.#compile(schedule);
    const stored = await this.#o.store.getDefinition(schedule.jobType);
    const timezone = schedule.timezone ?? this.#o.defaultTimezone;
    const next = schedule.paused ? undefined : compiled?.next(schedule.lastFiredAt);
    return {
      ...schedule,
      cronTrigger: stored?.definition.cronTrigger ?? schedule.cron,
      ...(timezone ? { effectiveTimezone: timezone } : {}),
      ...(next ? { nextFireAt: next } : {}),
    };
  }
}
