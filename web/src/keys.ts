/** Keyboard state shared by the shell's `g <letter>` shortcuts and the lists' j/k. */
let lastG = 0;

/** Records a key press; returns true when it completes a `g <letter>` chord. */
export function chord(key: string): boolean {
  if (key === "g") {
    lastG = Date.now();
    return false;
  }
  const completes = Date.now() - lastG < 1500;
  lastG = 0;
  return completes;
}

/** Whether a `g` was just pressed (the next letter belongs to the chord). */
export function inChord(): boolean {
  return Date.now() - lastG < 1500;
}
