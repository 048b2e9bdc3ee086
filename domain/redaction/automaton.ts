import type { Pattern } from './patternPrefixes';

/**
 * An Aho–Corasick automaton over every pattern string, in typed arrays: how much of the end of a stream's text
 * could still start a pattern, in time linear in that text whatever the patterns. Built only for a redactor
 * whose patterns repeat themselves so that the bisecting search (patternPrefixes.ts) would take longer than
 * that (a value of 2,000 `a`s, and text of `a`s): it takes 16 bytes per distinct prefix character.
 *
 * Transitions in two layers, compact because the trie holds every form of every secret:
 *
 * - States are numbered depth-first, so a state's first child (its smallest character) is the next state.
 *   Past the first few characters, a trie of thousands of secrets' forms is almost all single chains, so one
 *   32-bit word per state carries that child's character and the state's flags.
 * - The other children are "branches": a sorted list per branching state, searched by bisection.
 *
 * A mismatch follows failure links, each of which lowers the depth, so over a text of n code units there are
 * at most n of them: the automaton's work is at most about 2n steps whatever the text.
 */
export interface Automaton {
  readonly longestPattern: number;
  readonly stateCount: number;
  /** Per state: the character to state + 1 (bits 0–15) and the flags below. */
  readonly word: Int32Array;
  readonly depth: Int32Array;
  readonly fail: Int32Array;
  /** Per state: its index among branching states, or -1. */
  readonly branch: Int32Array;
  /** Per branching state b: its other children in character order, in [branchStart[b], branchStart[b+1]). */
  readonly branchStart: Int32Array;
  readonly branchChar: Uint16Array;
  readonly branchTarget: Int32Array;
  /** Per branching state: where its dense row starts in `dense`, or -1 (the root and its busiest children have one). */
  readonly denseRow: Int32Array;
  /** Dense rows, one child (or 0) per ASCII code unit: text that starts no pattern keeps the automaton near the root. */
  readonly dense: Int32Array;
}

/** Flags in `word`: the state has a first child (state + 1) on the character in bits 0–15. */
export const HAS_CHAIN = 1 << 16;
/** Children other than state + 1: look in the branch lists. */
export const BRANCH = 1 << 17;
export const CHAIN_MASK = HAS_CHAIN | 0xffff;
const DENSE_ASCII = 128;
const DENSE_MIN_CHILDREN = 4;
const DENSE_ROWS = 256;

/**
 * Builds the trie from the patterns in sorted order: each pattern shares its longest common prefix with
 * the one before, so the trie is one append-only walk (no hash map of children), its states numbered
 * depth-first: every state's first child is the state after it.
 */
export function buildAutomaton(input: readonly Pattern[]): Automaton {
  const patterns = [...input].sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : a.secret - b.secret));
  const lcp = new Int32Array(patterns.length);
  let stateCount = 1;
  let longestPattern = 0;
  for (let i = 0; i < patterns.length; i++) {
    const text = patterns[i]!.text;
    const prev = i > 0 ? patterns[i - 1]!.text : '';
    let k = 0;
    while (k < prev.length && k < text.length && prev.charCodeAt(k) === text.charCodeAt(k)) k++;
    lcp[i] = k;
    stateCount += text.length - k;
    longestPattern = Math.max(longestPattern, text.length);
  }

  const depth = new Int32Array(stateCount);
  const word = new Int32Array(stateCount);
  const childCount = new Int32Array(stateCount);
  const parent = new Int32Array(stateCount);
  const path = new Int32Array(longestPattern + 1);
  let next = 1;
  for (let i = 0; i < patterns.length; i++) {
    const { text } = patterns[i]!;
    for (let d = lcp[i]!; d < text.length; d++) {
      const state = next++;
      const from = path[d]!;
      depth[state] = d + 1;
      parent[state] = from;
      childCount[from]!++;
      const c = text.charCodeAt(d);
      if (state === from + 1) word[from] = HAS_CHAIN | c;
      path[d + 1] = state;
    }
  }

  // Branch lists: every child that is not state + 1, grouped by parent, in character order (creation order).
  const branch = new Int32Array(stateCount).fill(-1);
  let branchCount = 0;
  for (let s = 0; s < stateCount; s++) {
    const chained = (word[s]! & HAS_CHAIN) !== 0 ? 1 : 0;
    if (childCount[s]! > chained) {
      branch[s] = branchCount++;
      word[s]! |= BRANCH;
    }
  }
  const branchStart = new Int32Array(branchCount + 1);
  for (let t = 1; t < stateCount; t++) if (t !== parent[t]! + 1) branchStart[branch[parent[t]!]! + 1]!++;
  for (let b = 0; b < branchCount; b++) branchStart[b + 1]! += branchStart[b]!;
  const branchChar = new Uint16Array(branchStart[branchCount]!);
  const branchTarget = new Int32Array(branchStart[branchCount]!);
  const fill = branchStart.slice(0, branchCount);
  // Characters of branch children: walk the patterns again along the states they created.
  next = 1;
  for (let i = 0; i < patterns.length; i++) {
    const { text } = patterns[i]!;
    for (let d = lcp[i]!; d < text.length; d++) {
      const state = next++;
      const from = parent[state]!;
      if (state !== from + 1) {
        const slot = fill[branch[from]!]!++;
        branchChar[slot] = text.charCodeAt(d);
        branchTarget[slot] = state;
      }
    }
  }

  // Dense rows for the root and its children with DENSE_MIN_CHILDREN or more (at most DENSE_ROWS of them).
  const denseRow = new Int32Array(branchCount).fill(-1);
  const rootChildren = (word[0]! & HAS_CHAIN) !== 0 ? [1] : [];
  if (branch[0]! >= 0) for (let e = branchStart[branch[0]!]!; e < branchStart[branch[0]! + 1]!; e++) rootChildren.push(branchTarget[e]!);
  const shallow = [0, ...rootChildren.filter((t) => branch[t]! >= 0 && childCount[t]! >= DENSE_MIN_CHILDREN).slice(0, DENSE_ROWS - 1)];
  const dense = new Int32Array(shallow.length * DENSE_ASCII);
  shallow.forEach((state, r) => {
    const b = branch[state]!;
    if (b < 0) return;
    const row = r * DENSE_ASCII;
    denseRow[b] = row;
    if ((word[state]! & HAS_CHAIN) !== 0 && (word[state]! & 0xffff) < DENSE_ASCII) dense[row + (word[state]! & 0xffff)] = state + 1;
    for (let e = branchStart[b]!; e < branchStart[b + 1]!; e++) if (branchChar[e]! < DENSE_ASCII) dense[row + branchChar[e]!] = branchTarget[e]!;
  });
  const fail = new Int32Array(stateCount);
  // Failure links are filled in through the finished object, so that step() only ever sees one shape.
  const automaton: Automaton = { longestPattern, stateCount, word, depth, fail, branch, branchStart, branchChar, branchTarget, denseRow, dense };
  const queue = new Int32Array(stateCount);
  let head = 0;
  let tail = 0;
  const enqueueChildren = (s: number): void => {
    if ((word[s]! & HAS_CHAIN) !== 0) queue[tail++] = s + 1;
    const b = branch[s]!;
    if (b >= 0) for (let e = branchStart[b]!; e < branchStart[b + 1]!; e++) queue[tail++] = branchTarget[e]!;
  };
  const inChar = (t: number): number => {
    const from = parent[t]!;
    if (t === from + 1) return word[from]! & 0xffff;
    const b = branch[from]!;
    for (let e = branchStart[b]!; e < branchStart[b + 1]!; e++) if (branchTarget[e] === t) return branchChar[e]!;
    return -1;
  };
  enqueueChildren(0);
  while (head < tail) {
    const t = queue[head++]!;
    const from = parent[t]!;
    fail[t] = from === 0 ? 0 : step(automaton, fail[from]!, inChar(t));
    enqueueChildren(t);
  }

  return automaton;
}

/** The automaton's transition on code unit `c`, following failure links. */
export function step(a: Automaton, state: number, c: number): number {
  const { word, fail, branch } = a;
  const key = c | HAS_CHAIN;
  for (;;) {
    const w = word[state]!;
    if ((w & CHAIN_MASK) === key) return state + 1;
    if ((w & BRANCH) !== 0) {
      const t = branchStep(a, branch[state]!, c);
      if (t > 0) return t;
    }
    if (state === 0) return 0;
    state = fail[state]!;
  }
}

/** A branching state's child on `c`, or 0. */
export function branchStep(a: Automaton, b: number, c: number): number {
  if (c < DENSE_ASCII && a.denseRow[b]! >= 0) return a.dense[a.denseRow[b]! + c]!;
  const { branchStart, branchChar, branchTarget } = a;
  let lo = branchStart[b]!;
  const end = branchStart[b + 1]!;
  let hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (branchChar[mid]! < c) lo = mid + 1;
    else hi = mid;
  }
  return lo < end && branchChar[lo] === c ? branchTarget[lo]! : 0;
}
