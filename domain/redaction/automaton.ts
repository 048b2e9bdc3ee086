/**
 * An Aho–Corasick automaton over every pattern string, in typed arrays, plus a sampled q-gram prefilter on
 * each pattern's first `window` code units, with the tables that verify its hits.
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
  /**
   * The prefilter, blocked: a q-gram's hash picks one 64-byte block (BLOCK_WORDS words) and a bit in it;
   * the same block also holds a bit for each pair that q-gram starts, and one saying it has short rows. A
   * sampled q-gram is tested with one cache line, and a hit whose pair no pattern has (inside a
   * percent-encoded token, every q-gram is some pattern's) is dropped on the same line, with no table probe.
   * About 16 bits per key.
   */
  readonly filter: Int32Array;
  /** 32 - log2(number of blocks): a block is the top bits of the q-gram's mixed hash. */
  readonly filterShift: number;
  /**
   * Verification of a prefilter hit at text position j, keyed by two q-grams: the one that hit and the one
   * after it, [j, j + 2 gram). Each pattern registers, for each offset o of its first window, the pair at
   * [o, o + 2 gram) with its shape: a hit names only the patterns whose pair is the text's, usually one or
   * two, and each is dropped in O(1) when the text does not hold four of the pattern's characters where they
   * would be (`tailSample`), the first two at its very end. Near-miss text (a real secret's opening, then a
   * wrong tail) passes the pair and fails there. Only candidates that pass, or that a chunk's end cuts, run the automaton. A pair that more
   * than CROWDED_PAIR patterns share (a token family's opening, a percent-encoded prefix) keeps no rows, only
   * its offsets: the window it would start is hashed at each and looked up in `windows` instead.
   */
  readonly pairs: CandidateTable;
  /** HASH_BASE ** gram mod 2^32: extends a q-gram's hash by the next q-gram's. */
  readonly gramPower: number;
  /**
   * Rows of offsets too close to a short pattern's end for a whole pair (o + 2 gram > length), keyed by
   * the one q-gram; the q-gram's short bit in its filter block says whether it has any, so a hit probes
   * this table only then. Empty when every pattern is at least window + gram long.
   */
  readonly shorts: CandidateTable;
  /** The same rows keyed by each pattern's whole first window (offset 0), for crowded pairs. */
  readonly windows: CandidateTable;
}

/**
 * Candidate rows by hash, open addressing with linear probing, each slot four words, so that a probe and
 * (for most keys) the one row it names are one cache line: the key; a meta word; and a row. Meta is 0 for
 * an empty slot; else the count of rows (bits 0–7, 1 to the table's crowding limit): one is in the slot, more
 * are in `rows` from bits 8–31 on; or CROWDED in bits 0–7 and the offsets its rows have in their windows,
 * one bit each, in bits 8–31 (its rows are not kept).
 *
 * A row is two words: offset of the q-gram in the window (bits 0–4) and the pattern's length (bits 5–31);
 * the pattern's `tailSample`.
 */
export interface CandidateTable {
  readonly slots: Int32Array;
  readonly mask: number;
  readonly rows: Int32Array;
}

/** Words per filter block: 64 bytes, one cache line. */
export const BLOCK_WORDS = 16;
/** Mixes a q-gram's hash into the bit marking it has short rows (a different multiplier from HASH_MIX). */
export const SHORT_MIX = 0x85ebca6b | 0;

/** Meta count of a slot whose rows are too many to check one by one. */
export const CROWDED = 0xff;

/** A pair shared by more than this many patterns is checked through the window table. */
export const CROWDED_PAIR = 6;

/** A crowded pair is checked through the window table only when it occurs at this many offsets or fewer. */
export const MAX_CROWDED_OFFSETS = 4;

/**
 * A short q-gram or a window with more rows than this goes to the automaton. As many as the count byte
 * holds (below CROWDED): at 1,000 secrets a percent-encoded family opening fills one window with over 48
 * rows, and checking them all costs a tenth of walking the (then cache-missing) automaton along it.
 */
export const MAX_CANDIDATES = CROWDED - 1;

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

  // Rows by pair hash (or, near a short pattern's end, q-gram hash), and by whole window.
  const pairRows = new RowList();
  const shortRows = new RowList();
  const windowRows = new RowList();
  for (const { text } of patterns) {
    const chars = tailSample(text, 0, text.length);
    for (let o = 0; o + gram <= window; o++) {
      const shape = o | (text.length << 5);
      const start = windowHash(text, o, gram);
      if (o + 2 * gram <= text.length) pairRows.add(windowHash(text, o, 2 * gram), shape, chars, start);
      else shortRows.add(start, shape, chars, start);
    }
    windowRows.add(windowHash(text, 0, window), text.length << 5, chars, 0);
  }
  const pairs = candidateTable(pairRows, CROWDED_PAIR);
  const shorts = candidateTable(shortRows, MAX_CANDIDATES);
  const windows = candidateTable(windowRows, MAX_CANDIDATES);
  const filter = blockedFilter(grams, pairRows, shortRows, grams.size + pairs.keys + shorts.keys);
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
    filter: filter.blocks,
    filterShift: filter.shift,
    pairs,
    gramPower: hashPower(gram),
    shorts,
    windows,
  };
}

/**
 * The low bytes of four code units of a pattern of length `length` at `s` in `text`: at length - 1 and
 * length - 1 - length / 16 (near the end: inside the wrong tail of a near-miss, whatever its length), at
 * length / 2 and at 3 length / 4. All are inside the pattern for any length >= 1. A candidate whose text
 * differs is no occurrence; one that agrees is checked by the automaton (a false positive costs time only).
 */
export function tailSample(text: string, s: number, length: number): number {
  const end = s + length - 1;
  return (
    (text.charCodeAt(end) & 0xff) |
    ((text.charCodeAt(end - (length >> 4)) & 0xff) << 8) |
    ((text.charCodeAt(s + (length >> 1)) & 0xff) << 16) |
    ((text.charCodeAt(s + ((3 * length) >> 2)) & 0xff) << 24)
  );
}

/** HASH_BASE ** k mod 2^32, so that windowHash(t, i, 2k) = windowHash(t, i, k) * hashPower(k) + windowHash(t, i + k, k). */
export function hashPower(k: number): number {
  let p = 1;
  for (let i = 0; i < k; i++) p = Math.imul(p, HASH_BASE);
  return p;
}

/**
 * The blocked prefilter over q-grams, the pairs they start and the q-grams with short rows. A q-gram's mixed
 * hash gives its block (top bits) and its bit (the next 9 bits); a pair's bit is the top 9 bits of its own
 * mixed key, in the block of the q-gram it starts with.
 */
function blockedFilter(grams: Iterable<number>, pairs: RowList, shorts: RowList, keys: number): { blocks: Int32Array; shift: number } {
  let blocksLog = 4;
  while (blocksLog < 20 && (BLOCK_WORDS * 32) << blocksLog < keys * 16) blocksLog++;
  const shift = 32 - blocksLog;
  const blocks = new Int32Array(BLOCK_WORDS << blocksLog);
  const set = (block: number, bit: number): void => {
    blocks[block * BLOCK_WORDS + (bit >>> 5)]! |= 1 << (bit & 31);
  };
  for (const h of grams) {
    const m = Math.imul(h, HASH_MIX);
    set(m >>> shift, (m >>> (shift - 9)) & 511);
  }
  for (let r = 0; r < pairs.key.length; r++) set(Math.imul(pairs.start[r]!, HASH_MIX) >>> shift, Math.imul(pairs.key[r]!, HASH_MIX) >>> 23);
  for (let r = 0; r < shorts.key.length; r++) set(Math.imul(shorts.key[r]!, HASH_MIX) >>> shift, Math.imul(shorts.key[r]!, SHORT_MIX) >>> 23);
  return { blocks, shift };
}

/** Rows as they are registered, one column per field: the hash they are keyed by, their shape and tail sample, and the hash of the q-gram they start with. */
class RowList {
  readonly key: number[] = [];
  readonly shape: number[] = [];
  readonly chars: number[] = [];
  readonly start: number[] = [];
  add(key: number, shape: number, chars: number, start: number): void {
    this.key.push(key);
    this.shape.push(shape);
    this.chars.push(chars);
    this.start.push(start);
  }
}

/** The table's slot for `key` (its words from 4 * slot): its meta word is 0 when the key is absent. */
export function probe(table: CandidateTable, key: number): number {
  const { slots, mask } = table;
  let slot = (Math.imul(key, HASH_MIX) >>> 0) & mask;
  while (slots[4 * slot + 1] !== 0 && slots[4 * slot] !== key) slot = (slot + 1) & mask;
  return slot;
}

/** The distinct rows of `list` by key; a key with more than `crowdedAbove` rows keeps only their offsets. */
function candidateTable(list: RowList, crowdedAbove: number): CandidateTable & { keys: number } {
  const { key, shape, chars } = list;
  // Sorted by key, then row, so that a key's distinct rows are one run.
  const order = Array.from(key.keys()).sort((x, y) => key[x]! - key[y]! || shape[x]! - shape[y]! || chars[x]! - chars[y]!);
  // Compacted in place to the distinct rows (a write never passes the read); runs[k] is where key k's begin.
  const runs: number[] = [];
  let distinct = 0;
  let previous = -1;
  for (let i = 0; i < order.length; i++) {
    const r = order[i]!;
    const newKey = previous < 0 || key[previous] !== key[r];
    if (newKey) runs.push(distinct);
    if (newKey || shape[previous] !== shape[r] || chars[previous] !== chars[r]) order[distinct++] = r;
    previous = r;
  }
  runs.push(distinct);
  const keys = runs.length - 1;
  let size = 16;
  // Load at most 0.8: probes are mostly for present keys (the filter drops most absent ones), and four
  // slots share a cache line.
  while (size * 0.8 < keys) size *= 2;
  const mask = size - 1;
  const slots = new Int32Array(4 * size);
  let total = 0;
  for (let k = 0; k < keys; k++) {
    const rows = runs[k + 1]! - runs[k]!;
    if (rows > 1 && rows <= crowdedAbove) total += rows;
  }
  const out = new Int32Array(2 * total);
  let at = 0;
  const table = { slots, mask, rows: out, keys };
  for (let k = 0; k < keys; k++) {
    const from = runs[k]!;
    const count = runs[k + 1]! - from;
    const h = key[order[from]!]!;
    const slot = probe(table, h);
    slots[4 * slot] = h;
    if (count > crowdedAbove) {
      let offsets = 0;
      for (let i = from; i < from + count; i++) offsets |= 1 << (shape[order[i]!]! & 31);
      slots[4 * slot + 1] = (offsets << 8) | CROWDED;
    } else if (count === 1) {
      slots[4 * slot + 1] = 1;
      slots[4 * slot + 2] = shape[order[from]!]!;
      slots[4 * slot + 3] = chars[order[from]!]!;
    } else {
      slots[4 * slot + 1] = (at << 8) | count;
      for (let i = from; i < from + count; i++) {
        out[2 * at] = shape[order[i]!]!;
        out[2 * at++ + 1] = chars[order[i]!]!;
      }
    }
  }
  return table;
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
