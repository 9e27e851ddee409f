/** Small wording helpers for messages people read. */

/** "1 task", "3 tasks"; `plural` for nouns that do not take an s. */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}
