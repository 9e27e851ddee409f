/**
 * Job requests' definitions, stored once per distinct JSON text (the
 * job_request_definitions table, migration 0010) instead of once per job request: the
 * jobs of one type share one row, which the request references by `definition_id`.
 *
 * Each store connection keeps the ids of the texts it has seen and the definitions of the
 * ids it has read, parsed once and frozen, both bounded. Definition rows are never
 * deleted, so a kept id stays valid, except one this connection inserted in a
 * transaction that was then rolled back: the store forgets everything then (`clear`).
 */
import { createHash } from "node:crypto";
import { deepFreeze } from "../core/json.ts";
import type { JobDefinition } from "../core/job-definition.ts";

/** The key of a definition text: hex SHA-256 of its UTF-8 bytes (as the migrations compute it). */
export function definitionHash(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const CACHE_SIZE = 256;

function remember<K, V>(map: Map<K, V>, key: K, value: V): V {
  if (map.size >= CACHE_SIZE) map.delete(map.keys().next().value!);
  map.set(key, value);
  return value;
}

export class DefinitionTexts {
  readonly #ids = new Map<string, number>();
  readonly #definitions = new Map<number, JobDefinition>();

  /** The id of this text, if this connection knows it. */
  idOf(text: string): number | undefined {
    return this.#ids.get(text);
  }

  /** The text's id, as found or inserted in the store. */
  learn(text: string, id: number): void {
    remember(this.#ids, text, id);
  }

  /** The definition of `id`, parsed from `text()` the first time (and frozen). */
  definition(id: number, text: () => string): JobDefinition {
    return (
      this.#definitions.get(id) ??
      remember(this.#definitions, id, deepFreeze(JSON.parse(text()) as JobDefinition))
    );
  }

  clear(): void {
    this.#ids.clear();
    this.#definitions.clear();
  }
}

/**
 * PostgreSQL: what a query of job_requests selects or returns to get a whole JobRequest,
 * its definition included (`SELECT ${...} FROM job_requests`, `RETURNING ${...}`).
 */
export const POSTGRES_JOB_COLUMNS =
  "*, (SELECT d.definition FROM job_request_definitions d WHERE d.id = definition_id) AS definition";
