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

/**
 * Transitions in two layers, so that the cost per code unit does not depend on the text:
 *
 * - States are numbered depth-first, so a state's first child (its smallest character) is the next state.
 *   Past the first few characters, a trie of thousands of secrets' forms is almost all single chains, so one
 *   32-bit word per state carries that child's character and the state's flags: following a chain (what
 *   near-miss text does for most of its length) is one compare and one load.
 * - The other children are "branches": a sparse list per branching state, plus, for states with many
 *   children (the root and the first levels), a dense row over a compressed ASCII alphabet, one load.
 *
 * A mismatch follows failure links, each of which lowers the depth, so over a text of n code units there are
 * at most n of them: the automaton's work is at most about 2n steps whatever the text.
 */
export interface Automaton {
  /** Prefilter window: the shortest pattern length, capped, so every pattern has a full window. */
  readonly window: number;
  /** Length of the sampled q-grams; every q-gram of every pattern's first window is registered. */
  readonly gram: number;
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
  /** Per branching state: the offset of its dense row in `dense`, or -1. */
  readonly denseRow: Int32Array;
  /** Dense rows over the compressed alphabet: a child, or 0 for none (the root is nobody's child). */
  readonly dense: Int32Array;
  /** ASCII code unit to its column in a dense row (0: no pattern has it). */
  readonly classOf: Uint8Array;
  /** Number of columns of a dense row. */
  readonly classes: number;
  /**
   * The state two ASCII characters (by class, first x classes + second) lead to from anywhere: that of the
   * pair if it starts a pattern, else that of the second character, else the root. A mismatch at a state
   * flagged NEAR_FAIL lands exactly there, with no failure chain to follow.
   */
  readonly pair: Int32Array;
  /** States with an output, ascending, and the longest pattern ending there (length, and whose it is). */
  readonly outState: Int32Array;
  readonly outLength: Int32Array;
  readonly outSecret: Int32Array;
  readonly filterBits: Int32Array;
  readonly filterShift: number;
  /**
   * The q-grams of every pattern's first window, exactly: open addressing on the q-gram's hash, each slot
   * naming a run of `entry*` rows (one per pattern and offset of the q-gram in its window). A prefilter hit
   * then names its candidate starts, and a candidate is dropped in O(1) when the text does not hold the
   * pattern's last character, and its middle one, where they would be: what near-miss text (a secret's
   * prefix with a wrong tail) fails. Only candidates that pass, or that a chunk's end cuts, run the automaton.
   */
  readonly gramKey: Int32Array;
  /** Start of the slot's run in the entries, or -1 for an empty slot. */
  readonly gramStart: Int32Array;
  readonly gramCount: Uint8Array;
  readonly gramMask: number;
  /** Per entry: offset of the q-gram in the window (bits 0–4) and the pattern's length (bits 5–31). */
  readonly entryShape: Int32Array;
  /** Per entry: the pattern's last code unit (bits 0–15) and its middle one, at length >> 1 (bits 16–31). */
  readonly entryChars: Int32Array;
  /** Per q-gram slot: the offsets its entries have in their windows, one bit each. */
  readonly gramOffsets: Int32Array;
  /**
   * The same candidate rows keyed by each pattern's whole first window (offset 0). A q-gram many patterns
   * share (a token family's `ghp_`, a percent-encoded prefix) names too many candidates to check; at the few
   * offsets it has, the window it would start is hashed and looked up here instead, so near-miss text still
   * fails in O(window) rather than walking the automaton along the shared prefix.
   */
  readonly windowKey: Int32Array;
  readonly windowStart: Int32Array;
  readonly windowCount: Uint8Array;
  readonly windowMask: number;
  readonly windowShape: Int32Array;
  readonly windowChars: Int32Array;
}

/** A crowded q-gram is checked through the window table only when it occurs at this many offsets or fewer. */
export const MAX_CROWDED_OFFSETS = 4;

/** Prefilter hits whose q-gram opens more candidates than this go straight to the automaton. */
export const MAX_CANDIDATES = 48;

/** Flags in `word`: the state has a first child (state + 1) on the character in bits 0–15. */
export const HAS_CHAIN = 1 << 16;
/** Some pattern ends here (its own, or one its failure chain ends with). */
export const OUTPUT = 1 << 17;
/** Depth below the prefilter window: the scanner may hand back to the prefilter here. */
export const SHALLOW = 1 << 18;
/** Children other than state + 1: look in the branch lists. */
export const BRANCH = 1 << 19;
/** The failure link is the root or a state of depth 1: where a mismatch lands depends on the last two characters only. */
export const NEAR_FAIL = 1 << 20;
export const CHAIN_MASK = HAS_CHAIN | 0xffff;

export const HASH_BASE = 0x01000193;
export const HASH_MIX = 0x9e3779b1 | 0;
const MAX_WINDOW = 16;
const MAX_GRAM = 4;
/** Dense rows cover ASCII only: a row over all 64K code units would cost 256 KiB. */
const DENSE_ASCII = 128;
/** States with at least this many children get a dense row (in breadth-first order, within the budget). */
const DENSE_MIN_CHILDREN = 4;
/** At most this many dense entries (4 bytes each) per redactor. */
const DENSE_BUDGET = 1 << 20;

/** Polynomial hash of text[from, from+length) mod 2^32. */
export function windowHash(text: string, from: number, length: number): number {
  let h = 0;
  for (let i = from; i < from + length; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

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
  const window = patterns.length === 0 ? 0 : Math.min(shortest, MAX_WINDOW);

  const depth = new Int32Array(stateCount);
  // Built in full here, kept sparse (outState) once failure links have spread them.
  const ownLength = new Int32Array(stateCount);
  const ownSecret = new Int32Array(stateCount).fill(-1);
  const word = new Int32Array(stateCount);
  const childCount = new Int32Array(stateCount);
  const parent = new Int32Array(stateCount);
  const path = new Int32Array(longestPattern + 1);
  let next = 1;
  for (let i = 0; i < patterns.length; i++) {
    const { text, secret } = patterns[i]!;
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
    const end = path[text.length]!;
    // Sorting put equal strings together, lowest secret first: the first one keeps the state.
    if (ownLength[end] === 0) {
      ownLength[end] = text.length;
      ownSecret[end] = secret;
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

  // Dense rows over the ASCII characters patterns use, for the states with the most children, shallow first.
  const classOf = new Uint8Array(DENSE_ASCII);
  let classes = 1;
  for (const { text } of patterns)
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < DENSE_ASCII && classOf[c] === 0 && classes < 256) classOf[c] = classes++;
    }
  const denseRow = new Int32Array(branchCount).fill(-1);
  const byDepth: number[] = [];
  for (let s = 0; s < stateCount; s++) if (childCount[s]! >= DENSE_MIN_CHILDREN || s === 0) byDepth.push(s);
  byDepth.sort((x, y) => depth[x]! - depth[y]! || x - y);
  const rows = Math.min(byDepth.length, Math.floor(DENSE_BUDGET / classes));
  const dense = new Int32Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    const s = byDepth[r]!;
    const b = branch[s]!;
    if (b < 0) continue;
    const row = r * classes;
    denseRow[b] = row;
    if ((word[s]! & HAS_CHAIN) !== 0 && (word[s]! & 0xffff) < DENSE_ASCII) dense[row + classOf[word[s]! & 0xffff]!] = s + 1;
    for (let e = branchStart[b]!; e < branchStart[b + 1]!; e++) if (branchChar[e]! < DENSE_ASCII) dense[row + classOf[branchChar[e]!]!] = branchTarget[e]!;
  }

  const fail = new Int32Array(stateCount);
  const partial = { word, fail, branch, branchStart, branchChar, branchTarget, denseRow, dense, classOf };
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
    fail[t] = from === 0 ? 0 : step(partial, fail[from]!, inChar(t));
    // A state's own pattern is longer than anything its failure chain ends with.
    if (ownLength[t] === 0) {
      ownLength[t] = ownLength[fail[t]!]!;
      ownSecret[t] = ownSecret[fail[t]!]!;
    }
    enqueueChildren(t);
  }

  // Any state's string followed by a character it has no child for ends, at best, in a pattern's first two
  // characters when its failure link is that shallow: the pair table is that transition.
  const pair = new Int32Array(classes * classes);
  const representative = new Int32Array(classes).fill(-1);
  for (let c = 0; c < DENSE_ASCII; c++) if (classOf[c]! > 0 && representative[classOf[c]!]! < 0) representative[classOf[c]!] = c;
  for (let x = 1; x < classes; x++) {
    const first = step(partial, 0, representative[x]!);
    for (let y = 1; y < classes; y++) {
      const second = representative[y]!;
      const both = first > 0 ? step(partial, first, second) : 0;
      pair[x * classes + y] = both > 0 && depth[both] === 2 ? both : step(partial, 0, second);
    }
  }
  for (let y = 1; y < classes; y++) pair[y] = step(partial, 0, representative[y]!);

  let outputs = 0;
  for (let s = 0; s < stateCount; s++) {
    if (s > 0 && depth[fail[s]!]! <= 1) word[s]! |= NEAR_FAIL;
    if (ownLength[s]! > 0) {
      outputs++;
      word[s]! |= OUTPUT;
    }
    if (depth[s]! < window) word[s]! |= SHALLOW;
  }
  const outState = new Int32Array(outputs);
  const outLength = new Int32Array(outputs);
  const outSecret = new Int32Array(outputs);
  for (let s = 0, o = 0; s < stateCount; s++)
    if (ownLength[s]! > 0) {
      outState[o] = s;
      outLength[o] = ownLength[s]!;
      outSecret[o++] = ownSecret[s]!;
    }

  const gram = Math.min(window, MAX_GRAM);
  const grams = new Set<number>();
  for (const { text } of patterns) for (let o = 0; o + gram <= window; o++) grams.add(windowHash(text, o, gram));

  // Entries grouped by q-gram hash, distinct (offset, length, last, middle) only; and by whole window.
  const rowsByHash = new Map<number, Set<string>>();
  const rowsByWindow = new Map<number, Set<string>>();
  const addRow = (table: Map<number, Set<string>>, h: number, row: string): void => {
    let rows = table.get(h);
    if (!rows) table.set(h, (rows = new Set()));
    rows.add(row);
  };
  for (const { text } of patterns) {
    const chars = text.charCodeAt(text.length - 1) | (text.charCodeAt(text.length >> 1) << 16);
    for (let o = 0; o + gram <= window; o++) addRow(rowsByHash, windowHash(text, o, gram), `${o | (text.length << 5)},${chars}`);
    addRow(rowsByWindow, windowHash(text, 0, window), `${text.length << 5},${chars}`);
  }
  const gramTable = runTable(rowsByHash);
  const gramOffsets = new Int32Array(gramTable.key.length);
  for (let slot = 0; slot < gramOffsets.length; slot++)
    for (let e = gramTable.start[slot]!; e >= 0 && e < gramTable.start[slot]! + gramTable.size[slot]!; e++) gramOffsets[slot]! |= 1 << (gramTable.shape[e]! & 31);
  const windows = runTable(rowsByWindow);
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
    word,
    depth,
    fail,
    branch,
    branchStart,
    branchChar,
    branchTarget,
    denseRow,
    dense,
    classOf,
    classes,
    pair,
    outState,
    outLength,
    outSecret,
    filterBits,
    filterShift,
    gramKey: gramTable.key,
    gramStart: gramTable.start,
    gramCount: gramTable.count,
    gramMask: gramTable.mask,
    entryShape: gramTable.shape,
    entryChars: gramTable.chars,
    gramOffsets,
    windowKey: windows.key,
    windowStart: windows.start,
    windowCount: windows.count,
    windowMask: windows.mask,
    windowShape: windows.shape,
    windowChars: windows.chars,
  };
}

/** Open addressing on a hash, each slot naming its run of rows ("shape,chars"); counts above 255 read as many. */
function runTable(rowsByHash: ReadonlyMap<number, ReadonlySet<string>>): {
  key: Int32Array; start: Int32Array; count: Uint8Array; size: Int32Array; mask: number; shape: Int32Array; chars: Int32Array;
} {
  let slots = 16;
  // Load at most 0.8 (linear probing stays short), and the table stays a few MiB at 1,000 secrets.
  while (slots * 0.8 < rowsByHash.size) slots *= 2;
  const mask = slots - 1;
  const key = new Int32Array(slots);
  const start = new Int32Array(slots).fill(-1);
  const count = new Uint8Array(slots);
  const size = new Int32Array(slots);
  let total = 0;
  for (const rows of rowsByHash.values()) total += rows.size;
  const shape = new Int32Array(total);
  const chars = new Int32Array(total);
  let at = 0;
  for (const [h, rows] of rowsByHash) {
    let slot = Math.imul(h, HASH_MIX) >>> 0 & mask;
    while (start[slot]! >= 0) slot = (slot + 1) & mask;
    key[slot] = h;
    start[slot] = at;
    count[slot] = Math.min(rows.size, 255);
    size[slot] = rows.size;
    for (const row of rows) {
      const [s, c] = row.split(',');
      shape[at] = Number(s);
      chars[at++] = Number(c);
    }
  }
  return { key, start, count, size, mask, shape, chars };
}

type Transitions = Pick<Automaton, 'word' | 'fail' | 'branch' | 'branchStart' | 'branchChar' | 'branchTarget' | 'denseRow' | 'dense' | 'classOf'>;

/** The automaton's transition on code unit `c`, following failure links. */
export function step(a: Transitions, state: number, c: number): number {
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
export function branchStep(a: Transitions, b: number, c: number): number {
  if (c < DENSE_ASCII) {
    const row = a.denseRow[b]!;
    if (row >= 0) return a.dense[row + a.classOf[c]!]!;
  }
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

/** The output at `state` (whose word has OUTPUT): its index into outLength and outSecret. */
export function outputAt(a: Pick<Automaton, 'outState'>, state: number): number {
  const out = a.outState;
  let lo = 0;
  let hi = out.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (out[mid]! < state) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
