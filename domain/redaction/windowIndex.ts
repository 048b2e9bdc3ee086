import type { Pattern } from './patternPrefixes';

/**
 * Where the scanner looks for patterns: one window of `window` code units per pattern, sampled by a q-gram
 * every `stride` code units, and the tables that verify a sampled hit.
 *
 * Any `window` consecutive code units of an occurrence hold exactly one sampled position whose q-gram lies
 * inside them, so a pattern may register its window anywhere in itself. Each registers a window in the part
 * of it an outsider cannot write: its last window, unless another secret's pattern has the same text there
 * (a fixed suffix such as `@git.example.com/repo.git`), then the latest earlier one that no other secret
 * shares. Tokens of a family share their opening (`ghp_`, `sk-proj-`, the base64 of those), so text full of
 * other tokens of the same family (near misses) mostly misses the prefilter instead of hitting it on every
 * token, as a window at the pattern's start did.
 *
 * A hit at text position j is verified by the pair of q-grams [j - gram, j + gram), which names the
 * patterns (and the offset in each) whose window holds it; a candidate is dropped in O(1) when four of its
 * characters are not where they would be (`tailSample`), else compared whole.
 */
export interface WindowIndex {
  readonly window: number;
  readonly gram: number;
  /** window - gram + 1: one sampled q-gram in any window. */
  readonly stride: number;
  /** HASH_BASE ** gram mod 2^32: extends a q-gram's hash by the next q-gram's. */
  readonly gramPower: number;
  /**
   * The prefilter, blocked: a q-gram's hash picks one 64-byte block (BLOCK_WORDS words) and a bit in it; the
   * same block holds a bit for each pair that q-gram ends and one saying it has short rows. A sampled q-gram
   * is tested with one cache line, and a hit whose pair no pattern has (inside a percent-encoded token, every
   * q-gram is some pattern's) is dropped on the same line. About 16 bits per key.
   */
  readonly filter: Int32Array;
  /** 32 - log2(number of blocks): a block is the top bits of the q-gram's mixed hash. */
  readonly filterShift: number;
  /** Rows by the pair [o - gram, o + gram) around each registered q-gram at offset o >= gram. */
  readonly pairs: CandidateTable;
  /** Rows of registered q-grams at offsets below gram (no whole pair inside the pattern), by the q-gram. */
  readonly shorts: CandidateTable;
  /**
   * The hashes of every pattern's opening (its first `window` code units), a hashSet: a start whose next
   * `window` code units are not there starts no pattern. Asked only at the end of text that may continue,
   * where it spares the prefix search all but the last window; `openingGrams` first rules out starts a stretch
   * at a time.
   */
  readonly openings: Int32Array;
  readonly openingShift: number;
  /** Length of the grams in `openingGrams`: two q-grams where the window allows. */
  readonly openingGram: number;
  /** A bit per gram of every pattern's opening, at any offset, by the top bits of its mixed hash. */
  readonly openingGrams: Int32Array;
  readonly openingGramShift: number;
  /**
   * The longest pattern of at most LONG_VALUE code units: how far back the openings filters look. For the
   * longer ones (a PEM key in its encodings) the scan notes each sample whose q-gram may be in one's opening
   * (`longOpenings`), so that what a stream holds back is not looked for across a whole chunk.
   */
  readonly longestOrdinary: number;
  /** Whether any pattern is longer than LONG_VALUE. */
  readonly hasLong: boolean;
  /** A bit per q-gram of the opening window of every pattern longer than LONG_VALUE (about 64 bits per key). */
  readonly longOpenings: Int32Array;
  readonly longOpeningShift: number;
  /** HASH_BASE ** (window - 1): rolls a window's hash one code unit on. */
  readonly windowPower: number;
  readonly patternText: readonly string[];
  readonly patternLength: Int32Array;
  readonly patternSecret: Int32Array;
  /** Per pattern: its `tailSample`. */
  readonly patternTail: Int32Array;
  /** Per pattern: its smallest period (its length when it does not repeat). */
  readonly patternPeriod: Int32Array;
}

/**
 * Candidate rows by hash, open addressing with linear probing, each slot four words so that a probe and
 * (for most keys) the one row it names are one cache line: the key; the count of rows (0: empty slot); then
 * the row itself when there is one (offset of the q-gram in the pattern, pattern index), else where the
 * key's rows start in `rows` (two words each, the same fields).
 */
export interface CandidateTable {
  readonly slots: Int32Array;
  readonly mask: number;
  readonly rows: Int32Array;
  /** Number of distinct keys. */
  readonly keys: number;
}

/** Words per filter block: 64 bytes, one cache line. */
export const BLOCK_WORDS = 16;
export const HASH_BASE = 0x01000193;
export const HASH_MIX = 0x9e3779b1 | 0;
/** Mixes a q-gram's hash into the bit marking it has short rows (a different multiplier from HASH_MIX). */
export const SHORT_MIX = 0x85ebca6b | 0;
/** Patterns longer than this are looked for, at the end of stream text, by what the scan noted. */
const LONG_VALUE = 1024;
const MAX_WINDOW = 16;
const MAX_GRAM = 4;

/** Polynomial hash of text[from, from+length) mod 2^32. */
export function windowHash(text: string, from: number, length: number): number {
  let h = 0;
  for (let i = from; i < from + length; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

/** HASH_BASE ** k mod 2^32, so that windowHash(t, i, 2k) = windowHash(t, i, k) * hashPower(k) + windowHash(t, i + k, k). */
export function hashPower(k: number): number {
  let p = 1;
  for (let i = 0; i < k; i++) p = Math.imul(p, HASH_BASE);
  return p;
}

/**
 * The low bytes of four code units of a pattern of length `length` at `s` in `text`: at length - 1 and
 * length - 1 - length / 16 (near the end: inside the wrong tail of a near miss, whatever its length), at
 * length / 2 and at 3 length / 4. All are inside the pattern for any length >= 1. A candidate whose text
 * differs is no occurrence; one that agrees is compared whole (a false positive costs time only).
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

/** Patterns must be distinct strings (the redactor keeps one owner per string). */
export function buildWindowIndex(patterns: readonly Pattern[]): WindowIndex {
  let shortest = Number.MAX_SAFE_INTEGER;
  for (const { text } of patterns) shortest = Math.min(shortest, text.length);
  const window = patterns.length === 0 ? 0 : Math.min(shortest, MAX_WINDOW);
  const gram = Math.min(window, MAX_GRAM);
  const count = patterns.length;
  const patternText = patterns.map((p) => p.text);
  const patternLength = new Int32Array(count);
  const patternSecret = new Int32Array(count);
  const patternTail = new Int32Array(count);
  const patternPeriod = new Int32Array(count);
  const anchors = chooseWindows(patterns, window, gram);

  const grams = new Set<number>();
  const pairRows = new RowList();
  const shortRows = new RowList();
  for (let p = 0; p < count; p++) {
    const { text, secret } = patterns[p]!;
    patternLength[p] = text.length;
    patternSecret[p] = secret;
    patternTail[p] = tailSample(text, 0, text.length);
    patternPeriod[p] = smallestPeriod(text);
    for (let o = anchors[p]!; o + gram <= anchors[p]! + window; o++) {
      const g = windowHash(text, o, gram);
      grams.add(g);
      if (o >= gram) pairRows.add(windowHash(text, o - gram, 2 * gram), o, p, g);
      else shortRows.add(g, o, p, g);
    }
  }
  const openings = hashSet(new Set(patterns.map(({ text }) => windowHash(text, 0, window))));
  const longOpeningGrams = new Set<number>();
  let longestOrdinary = 0;
  for (const { text } of patterns)
    if (text.length <= LONG_VALUE) longestOrdinary = Math.max(longestOrdinary, text.length);
    else for (let o = 0; o + gram <= window; o++) longOpeningGrams.add(windowHash(text, o, gram));
  const openingGram = Math.min(window, 2 * gram);
  const openingGrams = new Set<number>();
  for (const { text } of patterns) for (let o = 0; o + openingGram <= window; o++) openingGrams.add(windowHash(text, o, openingGram));
  const openingSample = bitSet(openingGrams);
  const pairs = candidateTable(pairRows);
  const shorts = candidateTable(shortRows);
  const filter = blockedFilter(grams, pairRows, shortRows, grams.size + pairs.keys + shorts.keys);
  const longOpenings = bitSet(longOpeningGrams, 64);
  return {
    window,
    gram,
    stride: window - gram + 1,
    gramPower: hashPower(gram),
    filter: filter.blocks,
    filterShift: filter.shift,
    openings: openings.slots,
    openingShift: openings.shift,
    openingGram,
    openingGrams: openingSample.bits,
    openingGramShift: openingSample.shift,
    longestOrdinary,
    hasLong: longOpeningGrams.size > 0,
    longOpenings: longOpenings.bits,
    longOpeningShift: longOpenings.shift,
    windowPower: hashPower(window - 1),
    pairs,
    shorts,
    patternText,
    patternLength,
    patternSecret,
    patternTail,
    patternPeriod,
  };
}

/** The smallest d > 0 with text[i] = text[i + d] for every i: its length less its longest border (KMP). */
function smallestPeriod(text: string): number {
  const border = new Int32Array(text.length + 1);
  border[0] = -1;
  for (let i = 1, k = -1; i <= text.length; i++) {
    while (k >= 0 && text.charCodeAt(k) !== text.charCodeAt(i - 1)) k = border[k]!;
    border[i] = ++k;
  }
  return text.length - border[text.length]!;
}

/**
 * Each pattern's window start: as late as it can be with none of its pairs inside the pattern's opening or
 * ending that another secret's pattern shares (a family's fixed part, which anyone can write: `ghp_`, the
 * base64 of `https://deploy:`, `@git.example.com/repo.git`), and not before offset `gram`, so that every
 * q-gram has a whole pair. A pattern with no such place (almost all of it shared) takes its last window.
 */
function chooseWindows(patterns: readonly Pattern[], window: number, gram: number): Int32Array {
  const opening = sharedWithOtherSecrets(patterns, (t) => t);
  const ending = sharedWithOtherSecrets(patterns, (t) => [...t].reverse().join(''));
  const anchors = new Int32Array(patterns.length);
  patterns.forEach(({ text }, p) => {
    const last = text.length - window;
    // The first pair [d - gram, d + gram) must reach past the opening; the last, [d + window - 2 gram, d + window),
    // must start before the ending.
    const earliest = Math.max(gram, opening[p]! - gram + 1);
    const latest = Math.min(last, text.length - ending[p]! - window + 2 * gram - 1);
    anchors[p] = earliest <= latest ? latest : Math.max(0, last);
  });
  return anchors;
}

/**
 * Per pattern: the longest prefix of `key(text)` that a pattern of another secret also starts with. In
 * sorted order that is the longest common prefix with the nearest neighbour (either side) of another secret.
 */
function sharedWithOtherSecrets(patterns: readonly Pattern[], key: (text: string) => string): Int32Array {
  const keys = patterns.map((p) => key(p.text));
  const order = Array.from(keys.keys()).sort((x, y) => (keys[x]! < keys[y]! ? -1 : keys[x]! > keys[y]! ? 1 : 0));
  const common = (x: string, y: string): number => {
    let k = 0;
    while (k < x.length && k < y.length && x.charCodeAt(k) === y.charCodeAt(k)) k++;
    return k;
  };
  // lcp[i]: common prefix of order[i - 1] and order[i].
  const lcp = new Int32Array(order.length);
  for (let i = 1; i < order.length; i++) lcp[i] = common(keys[order[i - 1]!]!, keys[order[i]!]!);
  const shared = new Int32Array(patterns.length);
  for (let i = 0; i < order.length; i++) {
    const secret = patterns[order[i]!]!.secret;
    let best = 0;
    let run = Number.MAX_SAFE_INTEGER;
    for (let k = i - 1; k >= 0 && run > best; k--) {
      run = Math.min(run, lcp[k + 1]!);
      if (patterns[order[k]!]!.secret !== secret) {
        best = Math.max(best, run);
        break;
      }
    }
    run = Number.MAX_SAFE_INTEGER;
    for (let k = i + 1; k < order.length && run > best; k++) {
      run = Math.min(run, lcp[k]!);
      if (patterns[order[k]!]!.secret !== secret) {
        best = Math.max(best, run);
        break;
      }
    }
    shared[order[i]!] = best;
  }
  return shared;
}

/**
 * The blocked prefilter over q-grams, the pairs they end and the q-grams with short rows. A q-gram's mixed
 * hash gives its block (top bits) and its bit (the next 9 bits); a pair's bit is the top 9 bits of its own
 * mixed key, in the block of the q-gram that ends it (the sampled one).
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
  for (let r = 0; r < pairs.key.length; r++) set(Math.imul(pairs.sampled[r]!, HASH_MIX) >>> shift, Math.imul(pairs.key[r]!, HASH_MIX) >>> 23);
  for (let r = 0; r < shorts.key.length; r++) set(Math.imul(shorts.key[r]!, HASH_MIX) >>> shift, Math.imul(shorts.key[r]!, SHORT_MIX) >>> 23);
  return { blocks, shift };
}

/** About `bitsPerKey` bits per key, one bit each, by the top bits of the key's mixed hash. */
function bitSet(keys: Set<number>, bitsPerKey = 16): { bits: Int32Array; shift: number } {
  let log = 10;
  while (log < 30 && 2 ** log < keys.size * bitsPerKey) log++;
  const bits = new Int32Array(2 ** (log - 5));
  const shift = 32 - log;
  for (const h of keys) {
    const bit = Math.imul(h, HASH_MIX) >>> shift;
    bits[bit >>> 5]! |= 1 << (bit & 31);
  }
  return { bits, shift };
}

/**
 * The keys (a key of 0 stored as 1: a false positive costs time only), open addressing at load at most one
 * half, so that a key not there usually lands on an empty slot at once. Slot: the top bits of the key's
 * mixed hash.
 */
function hashSet(keys: Set<number>): { slots: Int32Array; shift: number } {
  let log = 4;
  while (2 ** log < 2 * keys.size) log++;
  const slots = new Int32Array(2 ** log);
  const shift = 32 - log;
  for (const h of keys) {
    const key = h === 0 ? 1 : h;
    let slot = Math.imul(key, HASH_MIX) >>> shift;
    while (slots[slot] !== 0 && slots[slot] !== key) slot = (slot + 1) & (slots.length - 1);
    slots[slot] = key;
  }
  return { slots, shift };
}

/** Whether `h` is in a hashSet's slots. */
export function inHashSet(slots: Int32Array, shift: number, h: number): boolean {
  const key = h === 0 ? 1 : h;
  for (let slot = Math.imul(key, HASH_MIX) >>> shift; ; slot = (slot + 1) & (slots.length - 1)) {
    const at = slots[slot]!;
    if (at === key) return true;
    if (at === 0) return false;
  }
}

/** Rows as they are registered, one column per field: the hash they are keyed by, the row, and the hash of the sampled q-gram. */
class RowList {
  readonly key: number[] = [];
  readonly offset: number[] = [];
  readonly pattern: number[] = [];
  readonly sampled: number[] = [];
  add(key: number, offset: number, pattern: number, sampled: number): void {
    this.key.push(key);
    this.offset.push(offset);
    this.pattern.push(pattern);
    this.sampled.push(sampled);
  }
}

/** The table's slot for `key` (its words from 4 * slot): its count word is 0 when the key is absent. */
export function probe(table: CandidateTable, key: number): number {
  const { slots, mask } = table;
  let slot = (Math.imul(key, HASH_MIX) >>> 0) & mask;
  while (slots[4 * slot + 1] !== 0 && slots[4 * slot] !== key) slot = (slot + 1) & mask;
  return slot;
}

/** The distinct rows of `list` by key. */
function candidateTable(list: RowList): CandidateTable {
  const { key, offset, pattern } = list;
  // Sorted by key, then row, so that a key's distinct rows are one run.
  const order = Array.from(key.keys()).sort((x, y) => key[x]! - key[y]! || pattern[x]! - pattern[y]! || offset[x]! - offset[y]!);
  // Compacted in place to the distinct rows (a write never passes the read); runs[k] is where key k's begin.
  const runs: number[] = [];
  let distinct = 0;
  let previous = -1;
  for (let i = 0; i < order.length; i++) {
    const r = order[i]!;
    const newKey = previous < 0 || key[previous] !== key[r];
    if (newKey) runs.push(distinct);
    if (newKey || pattern[previous] !== pattern[r] || offset[previous] !== offset[r]) order[distinct++] = r;
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
  let shared = 0;
  for (let k = 0; k < keys; k++) if (runs[k + 1]! - runs[k]! > 1) shared += runs[k + 1]! - runs[k]!;
  const rows = new Int32Array(2 * shared);
  let at = 0;
  const table = { slots, mask, rows, keys };
  for (let k = 0; k < keys; k++) {
    const from = runs[k]!;
    const n = runs[k + 1]! - from;
    const slot = 4 * probe(table, key[order[from]!]!);
    slots[slot] = key[order[from]!]!;
    slots[slot + 1] = n;
    if (n === 1) {
      slots[slot + 2] = offset[order[from]!]!;
      slots[slot + 3] = pattern[order[from]!]!;
    } else {
      slots[slot + 2] = at;
      for (let i = from; i < from + n; i++) {
        rows[2 * at] = offset[order[i]!]!;
        rows[2 * at++ + 1] = pattern[order[i]!]!;
      }
    }
  }
  return table;
}
