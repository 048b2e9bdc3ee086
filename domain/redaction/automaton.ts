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
  /** The root's transitions as a dense table: the root is entered from every candidate position. */
  readonly rootNext: Int32Array;
  readonly filterBits: Int32Array;
  readonly filterShift: number;
}

export const HASH_BASE = 0x01000193;
export const HASH_MIX = 0x9e3779b1 | 0;
const MAX_WINDOW = 16;
const MAX_GRAM = 4;

/** Polynomial hash of text[from, from+length) mod 2^32. */
export function windowHash(text: string, from: number, length: number): number {
  let h = 0;
  for (let i = from; i < from + length; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

export function buildAutomaton(patterns: readonly Pattern[]): Automaton {
  const children = new Map<number, number>();
  const depthList: number[] = [0];
  const outLenList: number[] = [0];
  const outSecretList: number[] = [-1];
  let longestPattern = 0;
  let shortest = Number.MAX_SAFE_INTEGER;
  for (const { text, secret } of patterns) {
    let state = 0;
    for (let i = 0; i < text.length; i++) {
      const key = state * 65536 + text.charCodeAt(i);
      let next = children.get(key);
      if (next === undefined) {
        next = depthList.length;
        children.set(key, next);
        depthList.push(i + 1);
        outLenList.push(0);
        outSecretList.push(-1);
      }
      state = next;
    }
    // Patterns arrive deduplicated, the same string keeping its lowest-numbered secret.
    if (outLenList[state] === 0) {
      outLenList[state] = text.length;
      outSecretList[state] = secret;
    }
    longestPattern = Math.max(longestPattern, text.length);
    shortest = Math.min(shortest, text.length);
  }

  const stateCount = depthList.length;
  const keys = Float64Array.from(children.keys()).sort();
  const edgeStart = new Int32Array(stateCount + 1);
  const edgeChar = new Uint16Array(keys.length);
  const edgeTarget = new Int32Array(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const from = Math.floor(key / 65536);
    edgeChar[i] = key - from * 65536;
    edgeTarget[i] = children.get(key)!;
    edgeStart[from + 1]!++;
  }
  for (let s = 0; s < stateCount; s++) edgeStart[s + 1]! += edgeStart[s]!;

  const rootNext = new Int32Array(65536);
  for (let e = edgeStart[0]!; e < edgeStart[1]!; e++) rootNext[edgeChar[e]!] = edgeTarget[e]!;

  const depth = Int32Array.from(depthList);
  const outLength = Int32Array.from(outLenList);
  const outSecret = Int32Array.from(outSecretList);
  const fail = new Int32Array(stateCount);
  const goto = (state: number, c: number): number => children.get(state * 65536 + c) ?? -1;
  const queue = new Int32Array(stateCount);
  let head = 0;
  let tail = 0;
  for (let e = edgeStart[0]!; e < edgeStart[1]!; e++) queue[tail++] = edgeTarget[e]!;
  while (head < tail) {
    const s = queue[head++]!;
    for (let e = edgeStart[s]!; e < edgeStart[s + 1]!; e++) {
      const c = edgeChar[e]!;
      const t = edgeTarget[e]!;
      let f = fail[s]!;
      let next = goto(f, c);
      while (next < 0 && f !== 0) {
        f = fail[f]!;
        next = goto(f, c);
      }
      fail[t] = next > 0 && next !== t ? next : 0;
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

/** The automaton's transition on code unit `c`, following failure links. */
export function step(a: Automaton, state: number, c: number): number {
  const { edgeStart, edgeChar, edgeTarget, fail, rootNext } = a;
  for (;;) {
    if (state === 0) return rootNext[c]!;
    let lo = edgeStart[state]!;
    const end = edgeStart[state + 1]!;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (edgeChar[mid]! < c) lo = mid + 1;
      else hi = mid;
    }
    if (lo < end && edgeChar[lo] === c) return edgeTarget[lo]!;
    state = fail[state]!;
  }
}

/** Whether text[from, to) is a prefix of some pattern (a plain trie walk, no failure links). */
export function isPatternPrefix(a: Automaton, text: string, from: number, to: number): boolean {
  let state = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    let next = -1;
    if (state === 0) next = a.rootNext[c]! || -1;
    else
      for (let e = a.edgeStart[state]!; e < a.edgeStart[state + 1]!; e++)
        if (a.edgeChar[e] === c) {
          next = a.edgeTarget[e]!;
          break;
        }
    if (next < 0) return false;
    state = next;
  }
  return true;
}
