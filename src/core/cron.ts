// cron_trigger expressions (SPEC section 2): 5 fields (minute hour day-of-month month
// day-of-week) or 6 (seconds first), optionally preceded by `CRON_TZ=<IANA zone>` (or
// `TZ=<zone>`), as cronie and Kubernetes CronJobs write it:
//
//   cron_trigger: "0 */5 * * * *"                         every 5 minutes, on the minute
//   cron_trigger: "CRON_TZ=Europe/Paris 0 0 9 * * 1-5"    9:00 Paris time on weekdays
//
// (Line comments: a block comment would end at the first "*/" of an expression.)
// Without a zone, the server's `schedules.timezone` applies (default: the machine's).
// Evaluation is croner's (day-of-month and day-of-week are ORed, as in Vixie cron).
import { Cron } from "croner";

export interface CronTrigger {
  /** The 5 or 6 fields. */
  cron: string;
  /** IANA zone from the CRON_TZ= prefix, if any. */
  timezone?: string;
}

/** Splits and checks a cron_trigger; throws an Error whose message says what to write. */
export function parseCronTrigger(text: string): CronTrigger {
  let rest = text.trim();
  let timezone: string | undefined;
  const prefix = /^(?:CRON_TZ|TZ)=(\S+)\s+/.exec(rest);
  if (prefix) {
    timezone = prefix[1]!;
    rest = rest.slice(prefix[0].length).trim();
    if (!isTimezone(timezone)) {
      throw new Error(
        `'${timezone}' is not a time zone; write an IANA name, e.g. CRON_TZ=Europe/Paris or CRON_TZ=UTC`,
      );
    }
  }
  const fields = rest === "" ? 0 : rest.split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    throw new Error(
      `'${text.trim()}' has ${fields} fields; write 5 (minute hour day-of-month month day-of-week) or 6 (seconds first), e.g. "0 */5 * * * *"`,
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(rest, { mode: "5-or-6-parts" });
  } catch (error) {
    throw new Error(
      `'${rest}' is not a valid cron expression: ${(error as Error).message.replace(/^CronPattern: /, "")}`,
      {
        cause: error,
      },
    );
  }
  // A valid pattern can still name no date at all (day 30 of February, 31 of April):
  // the schedule would never fire, silently.
  if (cron.nextRun() === null) {
    throw new Error(
      `'${rest}' never fires: no month it names has that day of the month; check day-of-month and month`,
    );
  }
  return timezone === undefined ? { cron: rest } : { cron: rest, timezone };
}

export function isTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A compiled schedule: the cron times after a moment, and the last one up to a moment. */
export class CronSchedule {
  readonly #cron: Cron;

  constructor(trigger: CronTrigger, defaultTimezone?: string) {
    const timezone = trigger.timezone ?? defaultTimezone;
    this.#cron = new Cron(trigger.cron, {
      mode: "5-or-6-parts",
      ...(timezone ? { timezone } : {}),
    });
  }

  /** The first cron time strictly after `after`. */
  next(after: Date): Date | undefined {
    return this.#cron.nextRun(after) ?? undefined;
  }

  /** The last cron time at or before `at`. */
  latest(at: Date): Date | undefined {
    return this.#cron.previousRuns(1, new Date(at.getTime() + 1))[0];
  }
}
