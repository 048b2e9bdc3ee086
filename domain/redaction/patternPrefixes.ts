import { type Automaton, buildAutomaton } from './automaton';

/** One string the redactor masks (a secret's value or one of its encoded forms), and whose mask it takes. */
export interface Pattern {
  readonly text: string;
  /** Index of the secret the pattern masks as (secrets are numbered in name order). */
  readonly secret: number;
}

const ASCII = 128;

/** The index of text[s, s + 2) among pairs of ASCII code units, or -1 (shorter, or not ASCII). */
function pairOf(text: string, s: number, n: number): number {
  if (n - s < 2) return -1;
  const a = text.charCodeAt(s);
  const b = text.charCodeAt(s + 1);
  return a < ASCII && b < ASCII ? a * ASCII + b : -1;
}

/**
 * Every pattern's text in code-unit order: what a stream asks at the end of a chunk, whether the text from a
 * start on could still grow into a pattern. The patterns that begin with a string follow one another in this
 * order from the first that is not smaller than it, so one bisection answers. It keeps only references to the
 * strings the window index holds anyway, where an automaton over the same patterns takes a state (16 bytes) per
 * distinct prefix character: about 20 MiB at 1,000 secrets. That automaton is built only for patterns that
 * repeat themselves (see `automaton`).
 */
export class PatternPrefixes {
  private readonly sorted: readonly string[];
  /**
   * Per pair of ASCII code units: where the patterns that begin with it start in `sorted`, and end (start ===
   * end: none). A bisection over thousands of strings spread over the heap misses the cache at every step;
   * this range leaves it a handful.
   */
  private readonly pairStart = new Int32Array(ASCII * ASCII);
  private readonly pairEnd = new Int32Array(ASCII * ASCII);
  readonly longestPattern: number;
  /** Code units compared so far: what a search costs, so that one that grows past linear can stop. */
  work = 0;
  private built: Automaton | undefined;

  constructor(private readonly patterns: readonly Pattern[]) {
    this.sorted = [...new Set(patterns.map((p) => p.text))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    this.longestPattern = this.sorted.reduce((longest, text) => Math.max(longest, text.length), 0);
    this.sorted.forEach((text, i) => {
      const pair = pairOf(text, 0, text.length);
      if (pair < 0) return;
      if (this.pairEnd[pair] === 0) this.pairStart[pair] = i;
      this.pairEnd[pair] = i + 1;
    });
  }

  /**
   * The automaton over the same patterns, once a search proved too slow: each compare can run as long as a
   * pattern repeats itself, so text that repeats a periodic value (2,000 `a`s, and `a`s) costs the bisecting
   * search the square of that length at every chunk's end, and the automaton one step per code unit.
   */
  get automaton(): Automaton | undefined {
    return this.built;
  }

  buildAutomaton(): Automaton {
    this.built ??= buildAutomaton(this.patterns);
    return this.built;
  }

  /** Whether text[s, n) is a proper prefix of a pattern: more text could still make it one. */
  startsPatternAt(text: string, s: number, n: number): boolean {
    const sorted = this.sorted;
    const length = n - s;
    const pair = pairOf(text, s, n);
    let lo = pair < 0 ? 0 : this.pairStart[pair]!;
    const end = pair < 0 ? sorted.length : this.pairEnd[pair]!;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compareWithSlice(sorted[mid]!, text, s, n) < 0) lo = mid + 1;
      else hi = mid;
    }
    // sorted[lo] is the first not smaller than the slice: the slice itself (then only the next can extend it) or
    // the first that might begin with it.
    for (let i = lo; i < end && i <= lo + 1; i++) {
      const candidate = sorted[i]!;
      if (candidate.length > length && this.beginsWith(candidate, text, s, n)) return true;
    }
    return false;
  }

  /** The order of `pattern` against text[s, n), by code units, as `<` orders strings (negative: the pattern first). */
  private compareWithSlice(pattern: string, text: string, s: number, n: number): number {
    const length = n - s;
    const common = Math.min(pattern.length, length);
    let k = 0;
    while (k < common && pattern.charCodeAt(k) === text.charCodeAt(s + k)) k++;
    this.work += k + 1;
    return k < common ? pattern.charCodeAt(k) - text.charCodeAt(s + k) : pattern.length - length;
  }

  /** Whether `pattern` begins with text[s, n). */
  private beginsWith(pattern: string, text: string, s: number, n: number): boolean {
    let k = 0;
    while (k < n - s && pattern.charCodeAt(k) === text.charCodeAt(s + k)) k++;
    this.work += k + 1;
    return k === n - s;
  }
}
