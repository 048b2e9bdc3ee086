import { BRANCH, HAS_CHAIN, step } from './automaton';
import type { PatternPrefixes } from './patternPrefixes';
import { type CandidateTable, type WindowIndex, BLOCK_WORDS, HASH_BASE, HASH_MIX, SHORT_MIX, inHashSet, probe, windowHash } from './windowIndex';

/** Past any position in a string (V8 strings are shorter than 2^29), and a small integer, so never boxed. */
const NO_CUT = 0x3fffffff;

/** Code units of a new chunk scanned together with held-back text before switching to the chunk itself. */
const BRIDGE = 256;

/**
 * Code units a search for the held-back suffix may compare beyond half the text it searches, before the
 * automaton takes over. Ordinary searches compare a few hundred (a handful of starts, each bisected in the
 * range of its first two code units); text that repeats a periodic value costs the square of its length.
 */
const SEARCH_BUDGET = 1 << 12;

/** windowHash(text, j, gram), written out for the usual gram of 4 (the loop is not unrolled otherwise). */
function gramHash(text: string, j: number, gram: number): number {
  if (gram === 4) {
    const h = (Math.imul((Math.imul(text.charCodeAt(j), HASH_BASE) + text.charCodeAt(j + 1)) | 0, HASH_BASE) + text.charCodeAt(j + 2)) | 0;
    return (Math.imul(h, HASH_BASE) + text.charCodeAt(j + 3)) | 0;
  }
  let h = 0;
  for (let i = j; i < j + gram; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

/**
 * One pass over text that may arrive in pieces: finds every occurrence of every pattern, merges
 * occurrences that overlap or touch into one region, and writes each region as one mask.
 *
 * Positions are absolute (counted from the start of the stream); `buffer` holds the text from `base` on,
 * which is everything not yet written out. Every `stride`-th position (counted from the start of the
 * stream) is sampled; a hit names candidates, each verified on its own, so occurrences are found in the
 * order of their windows, not of their ends. Text is written out up to the longest suffix that could still
 * start a pattern (the sorted patterns say which), and no further than the first region not yet final. A region
 * takes the name of its longest occurrence, ties going to the name that sorts first, so batch and streamed
 * output are the same string.
 */
export class Scanner {
  private buffer = '';
  private base = 0;
  private emitted = 0;
  /** The next sampled position to test. */
  private next = 0;
  /** While scanning: the first sample (relative to the buffer) with a candidate the text's end cuts off. */
  private cut = NO_CUT;
  /**
   * Samples (absolute, ascending) whose q-gram is in the opening of a pattern longer than LONG_VALUE, from
   * as far back as such a pattern could still be open at the end of the text: any other start there holds
   * no such pattern's opening, so it is not what a stream holds back.
   */
  private longOpenings: number[] = [];
  /** The last occurrence found: its pattern (-1: none) and absolute start. */
  private lastPattern = -1;
  private lastStart = 0;
  // Regions not yet written, sorted and disjoint, from index `first`.
  private regionStart: number[] = [];
  private regionEnd: number[] = [];
  private regionLength: number[] = [];
  private regionSecret: number[] = [];
  private first = 0;

  constructor(
    private readonly prefixes: PatternPrefixes,
    private readonly index: WindowIndex,
    private readonly masks: readonly string[],
  ) {}

  /** Scans `chunk` and returns what can no longer change; `final` also flushes what was held back. */
  feed(chunk: string, final: boolean): string {
    if (this.buffer.length === 0 || chunk.length <= 2 * BRIDGE) return this.process(this.buffer + chunk, final);
    // Held-back text + a large chunk: concatenating copies the chunk (a rope would slow every charCodeAt).
    // Scan across the seam on a short bridge instead; once nothing before the chunk is needed any more,
    // continue on the caller's own string.
    const chunkStart = this.base + this.buffer.length;
    const head = this.process(this.buffer + chunk.slice(0, BRIDGE), false, chunkStart);
    if (this.emitted < chunkStart) return head + this.process(this.buffer + chunk.slice(BRIDGE), final);
    this.base = chunkStart;
    return head + this.process(chunk, final);
  }

  /**
   * `bridgeTo`: the text is held-back text plus the first BRIDGE code units of a chunk, and what matters is
   * writing out everything before the chunk. When no pattern is longer than the bridge, every occurrence
   * starting before the chunk ends inside the bridge, so all of that is final without looking for an opening,
   * unless a region runs across the chunk's start (then the search says how far past it is final too).
   */
  private process(text: string, final: boolean, bridgeTo = -1): string {
    this.buffer = text;
    if (this.index.window > 0) this.scan(final);
    let hold = Number.POSITIVE_INFINITY;
    if (!final) hold = bridgeTo >= 0 && this.prefixes.longestPattern <= BRIDGE && !this.regionAcross(bridgeTo) ? bridgeTo : this.heldFrom();
    return this.emit(hold, final);
  }

  /** Whether a region not yet written starts before `at` and ends at or after it. */
  private regionAcross(at: number): boolean {
    let i = this.regionStart.length - 1;
    while (i >= this.first && this.regionStart[i]! >= at) i--;
    return i >= this.first && this.regionEnd[i]! >= at;
  }

  /** Whether `text` holds any occurrence; leaves the scanner as it was. */
  contains(text: string): boolean {
    this.buffer = text;
    if (this.index.window > 0) this.scan(true);
    const found = this.regionStart.length > 0;
    this.reset();
    return found;
  }

  /**
   * Tests the q-gram at every sampled position. A hit whose pair (the q-gram before it and itself) or short
   * bit is on the block the prefilter just loaded is verified; anything else goes no further. A sample with
   * a candidate that the end of non-final text cuts off is tested again with the next chunk.
   */
  private scan(final: boolean): void {
    const ix = this.index;
    const text = this.buffer;
    const n = text.length;
    const { filter, filterShift, gram, stride, gramPower, longOpenings, longOpeningShift } = ix;
    const bitShift = filterShift - 9;
    // Usually none: every pattern at least a window and two q-grams long has its window past the first q-gram.
    const hasShorts = ix.shorts.keys > 0;
    // Samples from which a pattern longer than LONG_VALUE could still be open at the end are noted.
    const longFrom = ix.hasLong && !final ? n - this.prefixes.longestPattern : NO_CUT;
    let j = this.next - this.base;
    // Samples before the buffer: anything they could start was final before it was written out.
    if (j < 0) j += Math.ceil(-j / stride) * stride;
    this.cut = NO_CUT;
    while (j + gram <= n) {
      const h = gramHash(text, j, gram);
      const m = Math.imul(h, HASH_MIX);
      const block = (m >>> filterShift) * BLOCK_WORDS;
      const bit = (m >>> bitShift) & 511;
      if (j >= longFrom) {
        const longBit = m >>> longOpeningShift;
        if ((longOpenings[longBit >>> 5]! >>> (longBit & 31)) & 1) this.noteLongOpening(this.base + j);
      }
      if ((filter[block + (bit >>> 5)]! >>> (bit & 31)) & 1) {
        if (hasShorts) {
          const shortBit = Math.imul(h, SHORT_MIX) >>> 23;
          if ((filter[block + (shortBit >>> 5)]! >>> (shortBit & 31)) & 1) this.verify(text, j, ix.shorts, h, final);
        }
        // Before the buffer's start a pair can only belong to text already written out.
        if (j >= gram) {
          const key = (Math.imul(gramHash(text, j - gram, gram), gramPower) + h) | 0;
          const pairBit = Math.imul(key, HASH_MIX) >>> 23;
          if ((filter[block + (pairBit >>> 5)]! >>> (pairBit & 31)) & 1) this.verify(text, j, ix.pairs, key, final);
        }
      }
      j += stride;
    }
    this.next = this.base + Math.min(j, this.cut);
  }

  private noteLongOpening(at: number): void {
    const notes = this.longOpenings;
    if (notes.length === 0 || notes[notes.length - 1]! < at) notes.push(at);
  }

  /** Checks the candidates `key` names in `table` for the sample at j. */
  private verify(text: string, j: number, table: CandidateTable, key: number, final: boolean): void {
    const slots = table.slots;
    const slot = 4 * probe(table, key);
    const count = slots[slot + 1]!;
    if (count === 1) this.candidate(text, j, slots[slot + 2]!, slots[slot + 3]!, final);
    else if (count > 1) {
      const rows = table.rows;
      for (let r = 2 * slots[slot + 2]!, end = r + 2 * count; r < end; r += 2) this.candidate(text, j, rows[r]!, rows[r + 1]!, final);
    }
  }

  /** Records pattern p if it occurs with its q-gram at offset `offset` on sample j. */
  private candidate(text: string, j: number, offset: number, p: number, final: boolean): void {
    const ix = this.index;
    const s = j - offset;
    // Text already written out holds no occurrence not yet found.
    if (this.base + s < this.emitted) return;
    const length = ix.patternLength[p]!;
    if (s + length > text.length) {
      if (!final && j < this.cut) this.cut = j;
      return;
    }
    // tailSample, compared a byte at a time so that a wrong end fails on the first.
    const c = ix.patternTail[p]!;
    const end = s + length - 1;
    if (
      ((text.charCodeAt(end) ^ c) & 0xff) !== 0 ||
      ((text.charCodeAt(end - (length >> 4)) ^ (c >>> 8)) & 0xff) !== 0 ||
      ((text.charCodeAt(s + (length >> 1)) ^ (c >>> 16)) & 0xff) !== 0 ||
      ((text.charCodeAt(s + ((3 * length) >> 2)) ^ (c >>> 24)) & 0xff) !== 0
    )
      return;
    const secret = ix.patternSecret[p]!;
    // Inside the last region and no better a name for it: masking it would change nothing, so it is not even
    // compared (text that repeats a periodic value would otherwise compare it whole at every sample).
    const last = this.regionStart.length - 1;
    if (
      last >= this.first &&
      this.regionStart[last]! <= this.base + s &&
      this.base + s + length <= this.regionEnd[last]! &&
      (length < this.regionLength[last]! || (length === this.regionLength[last] && secret >= this.regionSecret[last]!))
    )
      return;
    if (this.occursAt(text, s, p, length)) {
      this.lastPattern = p;
      this.lastStart = this.base + s;
      this.addMatch(this.base + s, this.base + s + length, length, secret);
    }
  }

  /**
   * Whether pattern p is text[s, s + length). Where the last occurrence found is of the same pattern a
   * shift d earlier, the two overlap only if d is a period of it: by Fine and Wilf, a shift that is no
   * multiple of its smallest period, and at most its length less that period, is none, and one that is leaves
   * only the d code units past the last occurrence to compare. So text that repeats a periodic value costs
   * a comparison per code unit, not per code unit times the value's length.
   */
  private occursAt(text: string, s: number, p: number, length: number): boolean {
    const pattern = this.index.patternText[p]!;
    const d = this.base + s - this.lastStart;
    if (p !== this.lastPattern || d <= 0 || d >= length) return text.startsWith(pattern, s);
    const period = this.index.patternPeriod[p]!;
    if (d % period !== 0) return d <= length - period ? false : text.startsWith(pattern, s);
    for (let i = length - d, at = s + length - d; i < length; i++, at++) if (text.charCodeAt(at) !== pattern.charCodeAt(i)) return false;
    return true;
  }

  /**
   * Adds an occurrence, merging it with the regions it overlaps or touches. Occurrences arrive in the order
   * of their sampled windows, so one may land before regions already found, though rarely far.
   */
  private addMatch(start: number, end: number, length: number, secret: number): void {
    const rs = this.regionStart;
    const re = this.regionEnd;
    const rl = this.regionLength;
    const rsec = this.regionSecret;
    // Regions [lo, hi) overlap or touch the occurrence: those after hi start past its end, those before lo end before its start.
    let hi = rs.length;
    while (hi > this.first && rs[hi - 1]! > end) hi--;
    let lo = hi;
    while (lo > this.first && re[lo - 1]! >= start) lo--;
    let s = start;
    let e = end;
    let bestLength = length;
    let bestSecret = secret;
    for (let i = lo; i < hi; i++) {
      s = Math.min(s, rs[i]!);
      e = Math.max(e, re[i]!);
      if (rl[i]! > bestLength || (rl[i] === bestLength && rsec[i]! < bestSecret)) {
        bestLength = rl[i]!;
        bestSecret = rsec[i]!;
      }
    }
    if (hi === rs.length) {
      // The usual case: the occurrence is at or merges into the end.
      rs.length = re.length = rl.length = rsec.length = lo;
      rs.push(s);
      re.push(e);
      rl.push(bestLength);
      rsec.push(bestSecret);
      return;
    }
    rs.splice(lo, hi - lo, s);
    re.splice(lo, hi - lo, e);
    rl.splice(lo, hi - lo, bestLength);
    rsec.splice(lo, hi - lo, bestSecret);
  }

  /**
   * Where text stops being final: the start of the longest suffix that is a proper prefix of a pattern (no
   * later occurrence can start before it, nor touch a region ending before it). Starts whose opening window
   * the text holds are ruled out by the openings filters, so the sorted patterns are asked only from the first
   * start they keep: usually the last window, however long the longest pattern.
   */
  private heldFrom(): number {
    const { openings, openingShift, openingGram, openingGrams, openingGramShift, window } = this.index;
    const text = this.buffer;
    const n = text.length;
    const long = this.heldLongFrom();
    if (long >= 0) return long;
    let s = Math.max(0, n - Math.max(this.index.longestOrdinary, window) + 1);
    // The gram sampled at j lies in the opening window of every start in [j - span, j]: a miss rules them all
    // out. On a hit each is looked up whole, as far as the text holds its whole opening window.
    const span = window - openingGram;
    sampling: for (let j = s + span; j + openingGram <= n; j += span + 1) {
      const bit = Math.imul(windowHash(text, j, openingGram), HASH_MIX) >>> openingGramShift;
      if ((openingGrams[bit >>> 5]! >>> (bit & 31)) & 1)
        for (; s <= j; s++) if (s + window > n || inHashSet(openings, openingShift, windowHash(text, s, window))) break sampling;
      s = j + 1;
    }
    return this.longestPrefixFrom(s);
  }

  /**
   * Where the longest suffix of the buffer from `s` on that is a proper prefix of a pattern starts (the buffer's
   * end when there is none): the first start on whose remaining text some pattern begins with. A start with a
   * whole window after it must hold an opening there, which the rolling hash asks first.
   */
  private longestPrefixFrom(s: number): number {
    const { openings, openingShift, window, windowPower } = this.index;
    const prefixes = this.prefixes;
    const text = this.buffer;
    const n = text.length;
    if (prefixes.automaton) return this.automatonPrefixFrom(s);
    // Linear in the text fed, or the automaton takes over from the start reached (every earlier one failed).
    const budget = prefixes.work + SEARCH_BUDGET + (n >>> 1);
    let h = s + window <= n ? windowHash(text, s, window) : 0;
    for (; s < n; s++) {
      if ((s + window > n || inHashSet(openings, openingShift, h)) && prefixes.startsPatternAt(text, s, n)) return this.base + s;
      if (prefixes.work > budget) return this.automatonPrefixFrom(s + 1);
      if (s + window < n) h = (Math.imul((h - Math.imul(text.charCodeAt(s), windowPower)) | 0, HASH_BASE) + text.charCodeAt(s + window)) | 0;
    }
    return this.base + n;
  }

  /** longestPrefixFrom by the automaton (built on first use): it reads from s, then its failure chain leads to a proper prefix. */
  private automatonPrefixFrom(s: number): number {
    const a = this.prefixes.buildAutomaton();
    const text = this.buffer;
    let state = 0;
    for (let p = s; p < text.length; p++) state = step(a, state, text.charCodeAt(p));
    // A whole pattern nothing extends is no proper prefix: its failure chain holds the longest that is.
    while (state !== 0 && (a.word[state]! & (HAS_CHAIN | BRANCH)) === 0) state = a.fail[state]!;
    return this.base + text.length - a.depth[state]!;
  }

  /**
   * Where a pattern longer than LONG_VALUE may be open at the end of the text, if anywhere before the reach of
   * the ordinary ones: the earliest start the noted samples cover whose whole opening window is an opening,
   * searched on from there; else -1. A start no noted sample covers was ruled out by the scan.
   */
  private heldLongFrom(): number {
    const notes = this.longOpenings;
    if (notes.length === 0) return -1;
    const { openings, openingShift, window, windowPower, gram, longestOrdinary } = this.index;
    const text = this.buffer;
    const n = text.length;
    const from = Math.max(0, n - this.prefixes.longestPattern + 1);
    // Starts from here on are the ordinary search's (which knows every pattern's opening).
    const until = n - Math.max(longestOrdinary, window) + 1;
    let kept = 0;
    let found = -1;
    for (const at of notes) {
      const j = at - this.base;
      if (j < from) continue;
      let s = Math.max(from, j - (window - gram));
      if (found >= 0 || s >= until) {
        notes[kept++] = at;
        continue;
      }
      // The starts this sample covers, their whole opening windows hashed rolling along. A sample all of whose
      // starts are no opening is done with (the text does not change); one cut short by `until` is kept.
      for (let h = windowHash(text, s, window); ; ) {
        if (inHashSet(openings, openingShift, h)) {
          found = s;
          notes[kept++] = at;
          break;
        }
        if (s === j) break;
        if (s + 1 >= until) {
          notes[kept++] = at;
          break;
        }
        h = (Math.imul((h - Math.imul(text.charCodeAt(s), windowPower)) | 0, HASH_BASE) + text.charCodeAt(s + window)) | 0;
        s++;
      }
    }
    notes.length = kept;
    return found < 0 ? -1 : this.longestPrefixFrom(found);
  }

  private emit(hold: number, final: boolean): string {
    const text = this.buffer;
    const base = this.base;
    let out = '';
    let at = this.emitted;
    while (this.first < this.regionStart.length && this.regionEnd[this.first]! < hold) {
      out += text.slice(at - base, this.regionStart[this.first]! - base) + this.masks[this.regionSecret[this.first]!]!;
      at = this.regionEnd[this.first]!;
      this.first++;
    }
    const limit = Math.min(hold, this.first < this.regionStart.length ? this.regionStart[this.first]! : hold, base + text.length);
    // The whole buffer unchanged is the common case: hand back the caller's own string, not a copy.
    out = at === base && limit - base === text.length && out === '' ? text : out + text.slice(at - base, limit - base);
    this.emitted = limit;
    this.buffer = text.slice(limit - base);
    this.base = limit;
    if (this.first > 64 && this.first * 2 > this.regionStart.length) this.compactRegions();
    if (final) this.reset();
    return out;
  }

  private compactRegions(): void {
    this.regionStart = this.regionStart.slice(this.first);
    this.regionEnd = this.regionEnd.slice(this.first);
    this.regionLength = this.regionLength.slice(this.first);
    this.regionSecret = this.regionSecret.slice(this.first);
    this.first = 0;
  }

  private reset(): void {
    this.buffer = '';
    this.base = this.emitted = this.next = this.first = this.lastStart = 0;
    this.lastPattern = -1;
    this.longOpenings = [];
    this.cut = NO_CUT;
    this.regionStart = [];
    this.regionEnd = [];
    this.regionLength = [];
    this.regionSecret = [];
  }
}
