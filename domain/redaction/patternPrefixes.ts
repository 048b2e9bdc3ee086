/** One string the redactor masks (a secret's value or one of its encoded forms), and whose mask it takes. */
export interface Pattern {
  readonly text: string;
  /** Index of the secret the pattern masks as (secrets are numbered in name order). */
  readonly secret: number;
}

/**
 * Every pattern's text in code-unit order: what a stream asks at the end of a chunk, whether the text from a
 * start on could still grow into a pattern. The patterns that begin with a string follow one another in this
 * order from the first that is not smaller than it, so one bisection answers. It keeps only references to the
 * strings the window index holds anyway, where an automaton over the same patterns took a state (16 bytes) per
 * distinct prefix character: about 20 MiB at 1,000 secrets.
 */
export class PatternPrefixes {
  private readonly sorted: readonly string[];
  readonly longestPattern: number;

  constructor(patterns: readonly Pattern[]) {
    this.sorted = [...new Set(patterns.map((p) => p.text))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.longestPattern = this.sorted.reduce((longest, text) => Math.max(longest, text.length), 0);
  }

  /** Whether text[s, n) is a proper prefix of a pattern: more text could still make it one. */
  startsPatternAt(text: string, s: number, n: number): boolean {
    const sorted = this.sorted;
    const length = n - s;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareWithSlice(sorted[mid]!, text, s, n) < 0) lo = mid + 1;
      else hi = mid;
    }
    // sorted[lo] is the first not smaller than the slice: the slice itself (then only the next can extend it) or
    // the first that might begin with it.
    for (let i = lo; i < sorted.length && i <= lo + 1; i++) {
      const candidate = sorted[i]!;
      if (candidate.length > length && beginsWith(candidate, text, s, n)) return true;
    }
    return false;
  }
}

/** The order of `pattern` against text[s, n), by code units, as `<` orders strings (negative: the pattern first). */
function compareWithSlice(pattern: string, text: string, s: number, n: number): number {
  const length = n - s;
  const common = Math.min(pattern.length, length);
  for (let k = 0; k < common; k++) {
    const d = pattern.charCodeAt(k) - text.charCodeAt(s + k);
    if (d !== 0) return d;
  }
  return pattern.length - length;
}

/** Whether `pattern` begins with text[s, n). */
function beginsWith(pattern: string, text: string, s: number, n: number): boolean {
  for (let k = 0; k < n - s; k++) if (pattern.charCodeAt(k) !== text.charCodeAt(s + k)) return false;
  return true;
}
