/**
 * An Aho–Corasick automaton over every pattern string, in typed arrays, plus a rolling-hash prefilter on
 * each pattern's first `window` code units.
 *
 * Why both: on ordinary text a multi-pattern automaton over thousands of base64-ish patterns never rests
 * at its root (every letter starts some pattern), so stepping it costs a transition lookup per character.
 * The prefilter answers "can a pattern start here?" with one multiply and one bit test, and the automaton
 * runs only from the rare positions that pass, until no live prefix is as long as the window again.
 */

export interface Pattern {
  readonly text: string;
  /** Index of the secret the pattern masks as (secrets are numbered in name order). */
  readonly secret: number;
}

export interface Automaton {
  /** Prefilter window: the shortest pattern length, capped, so every pattern has a full window. */
  readonly window: number;
  /** Length of the sampled q-grams; every q-gram of every pattern's first window is registered. */
  readonly gram: number;
  readonly longestPattern: number;
  readonly stateCount: number;
  readonly depth: Int32Array;
  readonly fail: Int32Array;
  /** Length of the longest pattern ending at this state (0: none), and whose it is. */
  readonly outLength: Int32Array;
  readonly outSecret: Int32Array;
  readonly edgeStart: Int32Array;
  readonly edgeChar: Uint16Array;
  readonly edgeTarget: Int32Array;
  /** The root's ASCII transitions as a dense table: every automaton session starts at the root. */
  readonly rootNext: Int32Array;
  readonly filterBits: Int32Array;
  readonly filterShift: number;
}

export const HASH_BASE = 0x01000193;
export const HASH_MIX = 0x9e3779b1 | 0;
const MAX_WINDOW = 16;
const MAX_GRAM = 4;
/** ASCII only: a full 64K table would cost 256 KiB per redactor, and the guard builds one per value. */
const ROOT_TABLE = 128;

/** Polynomial hash of text[from, from+length) mod 2^32. */
export function windowHash(text: string, from: number, length: number): number {
  let h = 0;
  for (let i = from; i < from + length; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

/**
 * Builds the trie from the patterns in sorted order: each pattern shares its longest common prefix with
 * the one before, so the trie is one append-only walk (no hash map of children), its states numbered
 * depth-first and every state's edges created in character order, ready for binary search.
 */
export function buildAutomaton(input: readonly Pattern[]): Automaton {
  const patterns = [...input].sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : a.secret - b.secret));
  const lcp = new Int32Array(patterns.length);
  let stateCount = 1;
  let longestPattern = 0;
  let shortest = Number.MAX_SAFE_INTEGER;
  for (let i = 0; i < patterns.length; i++) {
    const text = patterns[i]!.text;
    const prev = i > 0 ? patterns[i - 1]!.text : '';
    let k = 0;
    while (k < prev.length && k < text.length && prev.charCodeAt(k) === text.charCodeAt(k)) k++;
    lcp[i] = k;
    stateCount += text.length - k;
    longestPattern = Math.max(longestPattern, text.length);
    shortest = Math.min(shortest, text.length);
  }

  const depth = new Int32Array(stateCount);
  const outLength = new Int32Array(stateCount);
  const outSecret = new Int32Array(stateCount).fill(-1);
  const edgeParent = new Int32Array(stateCount - 1);
  const edgeCharByChild = new Uint16Array(stateCount - 1);
  const path = new Int32Array(longestPattern + 1);
  let next = 1;
  for (let i = 0; i < patterns.length; i++) {
    const { text, secret } = patterns[i]!;
    for (let d = lcp[i]!; d < text.length; d++) {
      const state = next++;
      depth[state] = d + 1;
      edgeParent[state - 1] = path[d]!;
      edgeCharByChild[state - 1] = text.charCodeAt(d);
      path[d + 1] = state;
    }
    const end = path[text.length]!;
    // Sorting put equal strings together, lowest secret first: the first one keeps the state.
    if (outLength[end] === 0) {
      outLength[end] = text.length;
      outSecret[end] = secret;
    }
  }

  const edgeStart = new Int32Array(stateCount + 1);
  for (let e = 0; e < stateCount - 1; e++) edgeStart[edgeParent[e]! + 1]!++;
  for (let s = 0; s < stateCount; s++) edgeStart[s + 1]! += edgeStart[s]!;
  const edgeChar = new Uint16Array(stateCount - 1);
  const edgeTarget = new Int32Array(stateCount - 1);
  const fill = edgeStart.slice(0, stateCount);
  for (let e = 0; e < stateCount - 1; e++) {
    const slot = fill[edgeParent[e]!]!++;
    edgeChar[slot] = edgeCharByChild[e]!;
    edgeTarget[slot] = e + 1;
  }
  const rootNext = new Int32Array(ROOT_TABLE);
  for (let e = edgeStart[0]!; e < edgeStart[1]!; e++) if (edgeChar[e]! < ROOT_TABLE) rootNext[edgeChar[e]!] = edgeTarget[e]!;

  const fail = new Int32Array(stateCount);
  const partial = { edgeStart, edgeChar, edgeTarget, fail, rootNext };
  const queue = new Int32Array(stateCount);
  let head = 0;
  let tail = 0;
  for (let e = edgeStart[0]!; e < edgeStart[1]!; e++) queue[tail++] = edgeTarget[e]!;
  while (head < tail) {
    const s = queue[head++]!;
    for (let e = edgeStart[s]!; e < edgeStart[s + 1]!; e++) {
      const t = edgeTarget[e]!;
      fail[t] = step(partial, fail[s]!, edgeChar[e]!);
      // A state's own pattern is longer than anything its failure chain ends with.
      if (outLength[t] === 0) {
        outLength[t] = outLength[fail[t]!]!;
        outSecret[t] = outSecret[fail[t]!]!;
      }
      queue[tail++] = t;
    }
  }

  const window = patterns.length === 0 ? 0 : Math.min(shortest, MAX_WINDOW);
  const gram = Math.min(window, MAX_GRAM);
  const grams = new Set<number>();
  for (const { text } of patterns) for (let o = 0; o + gram <= window; o++) grams.add(windowHash(text, o, gram));
  let bitsLog = 12;
  while (bitsLog < 24 && 1 << bitsLog < grams.size * 64) bitsLog++;
  const filterBits = new Int32Array(1 << (bitsLog - 5));
  const filterShift = 32 - bitsLog;
  for (const h of grams) {
    const idx = Math.imul(h, HASH_MIX) >>> filterShift;
    filterBits[idx >>> 5]! |= 1 << (idx & 31);
  }

  return {
    window,
    gram,
    longestPattern,
    stateCount,
    depth,
    fail,
    outLength,
    outSecret,
    edgeStart,
    edgeChar,
    edgeTarget,
    rootNext,
    filterBits,
    filterShift,
  };
}

type Transitions = Pick<Automaton, 'edgeStart' | 'edgeChar' | 'edgeTarget' | 'fail' | 'rootNext'>;

/** The automaton's transition on code unit `c`, following failure links. */
export function step(a: Transitions, state: number, c: number): number {
  const { edgeStart, edgeChar, edgeTarget, fail, rootNext } = a;
  for (;;) {
    if (state === 0 && c < ROOT_TABLE) return rootNext[c]!;
    let lo = edgeStart[state]!;
    const end = edgeStart[state + 1]!;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (edgeChar[mid]! < c) lo = mid + 1;
      else hi = mid;
    }
    if (lo < end && edgeChar[lo] === c) return edgeTarget[lo]!;
    if (state === 0) return 0;
    state = fail[state]!;
  }
}
