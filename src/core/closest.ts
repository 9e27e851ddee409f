/**
 * "Did you mean" suggestions for unknown keys and flags. A module of its own so that
 * the CLI's flag parser does not load the YAML reader (and `yaml`) to suggest a flag.
 */

/** Edit distance, for "did you mean" suggestions. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = row;
  }
  return prev[b.length] ?? 0;
}

function normalize(word: string): string {
  return word
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[-\s]+/g, "_")
    .toLowerCase();
}

/** The known word closest to `word` (camelCase, case and typos forgiven), if any is close. */
export function closest(word: string, known: readonly string[]): string | undefined {
  const norm = normalize(word);
  const exact = known.find((k) => normalize(k) === norm);
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const k of known) {
    const d = distance(norm, normalize(k));
    if (d < bestDistance && d < word.length) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}
