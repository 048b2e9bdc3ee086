import { type Automaton, type CandidateTable, BLOCK_WORDS, CROWDED, SHORT_MIX, MAX_CROWDED_OFFSETS, BRANCH, CHAIN_MASK, HASH_BASE, HASH_MIX, HAS_CHAIN, NEAR_FAIL, OUTPUT, SHALLOW, branchStep, outputAt, probe, step } from './automaton';

/** Past any position in a string (V8 strings are shorter than 2^29), and a small integer, so never boxed. */
const NO_CANDIDATE = 0x3fffffff;

/** A prefilter hit's pair: ends past the text; in the filter block (probe the table); not in it. */
const PAIR_CUT = 0;
const PAIR_SET = 1;
const PAIR_ABSENT = 2;

/** Code units of a new chunk scanned together with held-back text before switching to the chunk itself. */
const BRIDGE = 256;

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
 * Positions are absolute (counted from the start of the stream); `buffer` holds the text from `emitted`
 * on, which is everything not yet written out. A region takes the name of its longest occurrence, ties
 * going to the name that sorts first, so batch and streamed output are the same string.
 */
export class Scanner {
  private buffer = '';
  private base = 0;
  private emitted = 0;
  /** Hash mode: the next position that might start a pattern. Automaton mode: the next code unit to feed. */
  private pos = 0;
  /** -1 in hash mode, else the automaton state after feeding everything before `pos`. */
  private state = -1;
  private sessionStart = 0;
  /** The session does not hand back before this position: the end of the q-gram that started it. */
  private sessionUntil = 0;
  // Regions not yet written, sorted and disjoint, from index `first`.
  private regionStart: number[] = [];
  private regionEnd: number[] = [];
  private regionLength: number[] = [];
  private regionSecret: number[] = [];
  private first = 0;

  constructor(
    private readonly automaton: Automaton,
    private readonly masks: readonly string[],
  ) {}

  /** Scans `chunk` and returns what can no longer change; `final` also flushes what was held back. */
  feed(chunk: string, final: boolean): string {
    if (this.buffer.length === 0 || chunk.length <= 2 * BRIDGE) return this.process(this.buffer + chunk, final);
    // Held-back text + a large chunk: concatenating copies the chunk (a rope would slow every charCodeAt).
    // Scan across the seam on a short bridge instead; once nothing before the chunk is needed any more,
    // continue on the caller's own string.
    const chunkStart = this.base + this.buffer.length;
    const head = this.process(this.buffer + chunk.slice(0, BRIDGE), false);
    if (this.emitted < chunkStart) return head + this.process(this.buffer + chunk.slice(BRIDGE), final);
    this.base = chunkStart;
    return head + this.process(chunk, final);
  }

  private process(text: string, final: boolean): string {
    this.buffer = text;
    if (this.automaton.window > 0) this.scan(final);
    else this.pos = this.base + text.length;
    return this.emit(final);
  }

  /** Whether `text` holds any occurrence; leaves the scanner as it was. */
  contains(text: string): boolean {
    this.buffer = text;
    if (this.automaton.window > 0) this.scan(true);
    const found = this.regionStart.length > 0;
    this.reset();
    return found;
  }

  /**
   * Tests one q-gram every `stride` code units: a pattern starting at s has a registered q-gram at offset
   * j - s for the one sampled j in [s, s + window - q], so a miss at j clears every start in
   * [j - window + q, j]. A hit runs the automaton from the earliest start not yet cleared.
   */
  private scan(final: boolean): void {
    const a = this.automaton;
    const text = this.buffer;
    const n = text.length;
    const { filter, filterShift, gram } = a;
    const bitShift = filterShift - 9;
    const gramPower = a.gramPower;
    const reach = a.window - gram;
    const stride = reach + 1;
    let cleared = this.pos - this.base;

    if (this.state >= 0) {
      cleared = this.runAutomaton(text, this.state, cleared, this.sessionStart - this.base, this.sessionUntil - this.base, final);
      if (cleared < 0) return;
    }
    let j = cleared + reach;
    while (j + gram <= n) {
      const h = gramHash(text, j, gram);
      const m = Math.imul(h, HASH_MIX);
      const block = (m >>> filterShift) * BLOCK_WORDS;
      const bit = (m >>> bitShift) & 511;
      if ((filter[block + (bit >>> 5)]! >>> (bit & 31)) & 1) {
        // The pair [j, j + 2 gram) and whether the q-gram has short rows are on the block just loaded: a hit
        // with neither (inside a percent-encoded token, every q-gram is some pattern's) goes no further.
        let pair = PAIR_CUT;
        let key = 0;
        if (j + 2 * gram <= n) {
          key = (Math.imul(h, gramPower) + gramHash(text, j + gram, gram)) | 0;
          const pairBit = Math.imul(key, HASH_MIX) >>> 23;
          pair = (filter[block + (pairBit >>> 5)]! >>> (pairBit & 31)) & 1 ? PAIR_SET : PAIR_ABSENT;
        }
        const shortBit = Math.imul(h, SHORT_MIX) >>> 23;
        const short = (filter[block + (shortBit >>> 5)]! >>> (shortBit & 31)) & 1;
        const candidate = pair === PAIR_ABSENT && short === 0 ? NO_CANDIDATE : this.firstCandidate(text, j, pair, key, short, cleared, final);
        if (candidate === NO_CANDIDATE) {
          cleared = j + 1;
          j += stride;
          continue;
        }
        const start = Math.max(cleared, candidate);
        // Hand back no earlier than past the q-gram that hit: handing back before it would only hit again.
        cleared = this.runAutomaton(text, 0, start, start, j + gram, final);
        if (cleared < 0) return;
        j = cleared + reach;
      } else {
        cleared = j + 1;
        j += stride;
      }
    }
    // The text ended before these starts were sampled: run the automaton over the short tail itself. Left
    // mid-session, what it holds is exactly the longest suffix that is a proper prefix of a pattern.
    while (cleared < n) {
      cleared = this.runAutomaton(text, 0, cleared, cleared, cleared, final);
      if (cleared < 0) return;
    }
    this.pos = this.base + n;
  }

  /**
   * The earliest start in [cleared, j] at which a pattern whose window holds the q-gram at j could occur;
   * NO_CANDIDATE when none can. The pair [j, j + 2 gram) (`key`; `pair` says whether the filter has it, or
   * the text ends first) names the candidates; those too short for a whole pair there are under the q-gram
   * alone (`short`: the filter says it has some). A candidate the text's end cuts off counts unless the text
   * is final.
   */
  private firstCandidate(text: string, j: number, pair: number, key: number, short: number, cleared: number, final: boolean): number {
    const a = this.automaton;
    const gram = a.gram;
    let best = NO_CANDIDATE;
    if (short !== 0) {
      const shorts = a.shorts;
      const slot = 4 * probe(shorts, gramHash(text, j, gram));
      const meta = shorts.slots[slot + 1]!;
      // Too many to check: the automaton from the earliest start the q-gram can mean.
      if ((meta & 0xff) === CROWDED) return j - (a.window - gram);
      if (meta !== 0) best = this.checkSlot(text, j, shorts, slot, meta, cleared, final, best);
    }
    // Every pattern with a pair here reaches past j + 2 gram: cut off by the end, or (final) not there.
    if (pair === PAIR_CUT) return final ? best : Math.min(best, j - (a.window - gram));
    // No pattern's window holds this pair at any offset (the filter block says so for most such pairs).
    if (pair === PAIR_ABSENT) return best;
    const pairs = a.pairs;
    const slot = 4 * probe(pairs, key);
    const meta = pairs.slots[slot + 1]!;
    if (meta === 0) return best;
    if ((meta & 0xff) === CROWDED) return Math.min(best, this.crowdedCandidate(text, j, meta >>> 8, cleared, final));
    return this.checkSlot(text, j, pairs, slot, meta, cleared, final, best);
  }

  /** The earliest of `best` and the candidates of a slot whose `tailSample` the text holds. */
  private checkSlot(text: string, j: number, table: CandidateTable, slot: number, meta: number, cleared: number, final: boolean, best: number): number {
    const count = meta & 0xff;
    if (count === 1) return this.checkRows(text, j, table.slots, slot + 2, slot + 4, cleared, final, best);
    const from = 2 * (meta >>> 8);
    return this.checkRows(text, j, table.rows, from, from + 2 * count, cleared, final, best);
  }

  private checkRows(text: string, j: number, rows: Int32Array, from: number, end: number, cleared: number, final: boolean, best: number): number {
    const n = text.length;
    for (let e = from; e < end; e += 2) {
      const shape = rows[e]!;
      const s = j - (shape & 31);
      if (s < cleared || s >= best) continue;
      const length = shape >>> 5;
      if (s + length > n) {
        if (!final) best = s;
        continue;
      }
      // tailSample, compared a byte at a time so that near-miss text (a wrong end) fails on the first.
      const c = rows[e + 1]!;
      const end = s + length - 1;
      if (
        ((text.charCodeAt(end) ^ c) & 0xff) === 0 &&
        ((text.charCodeAt(end - (length >> 4)) ^ (c >>> 8)) & 0xff) === 0 &&
        ((text.charCodeAt(s + (length >> 1)) ^ (c >>> 16)) & 0xff) === 0 &&
        ((text.charCodeAt(s + ((3 * length) >> 2)) ^ (c >>> 24)) & 0xff) === 0
      )
        best = s;
    }
    return best;
  }

  /**
   * `firstCandidate` for a pair too many patterns share: at each offset it has in their windows (`offsets`),
   * the window it would start is hashed whole and its own (few) candidates checked the same way. A pair at
   * more offsets than MAX_CROWDED_OFFSETS, or a window many patterns share, runs the automaton from the
   * earliest start as before.
   */
  private crowdedCandidate(text: string, j: number, offsets: number, cleared: number, final: boolean): number {
    const a = this.automaton;
    const { window, windows } = a;
    let spread = 0;
    for (let bits = offsets; bits !== 0; bits &= bits - 1) spread++;
    if (spread > MAX_CROWDED_OFFSETS) return j - (window - a.gram);
    const n = text.length;
    let best = NO_CANDIDATE;
    for (let bits = offsets; bits !== 0; bits &= bits - 1) {
      const s = j - (31 - Math.clz32(bits & -bits));
      if (s < cleared || s >= best) continue;
      // Every pattern is at least a window long: one the text's end cuts off counts unless the text is final.
      if (s + window > n) {
        if (!final) best = s;
        continue;
      }
      let h = 0;
      for (let i = s; i < s + window; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
      const slot = 4 * probe(windows, h);
      const meta = windows.slots[slot + 1]!;
      if (meta === 0) continue;
      if ((meta & 0xff) === CROWDED) {
        best = s;
        continue;
      }
      // Rows keyed by the window all have offset 0: the window starts at s.
      best = this.checkSlot(text, s, windows, slot, meta, cleared, final, best);
    }
    return best;
  }

  /**
   * Feeds the automaton from `from` until no live prefix reaches back a full window (the prefilter will
   * see anything starting later) or the text runs out. Returns where hash scanning resumes, or -1 when the
   * text ran out mid-session (the state is kept for the next chunk).
   */
  private runAutomaton(text: string, state: number, from: number, sessionStart: number, until: number, final: boolean): number {
    const a = this.automaton;
    const { word, depth, pair, classOf, classes } = a;
    const n = text.length;
    const base = this.base;
    let p = from;
    let w = word[state]!;
    while (p < n) {
      const c = text.charCodeAt(p);
      p++;
      // Following a chain is the common step; anything else (branches, failure links) is step()'s.
      if ((w & CHAIN_MASK) === (c | HAS_CHAIN)) state++;
      else {
        let t = (w & BRANCH) !== 0 ? branchStep(a, a.branch[state]!, c) : 0;
        if (t === 0) {
          // A mismatch whose failure link is shallow lands where the last two characters say (p - 2 holds the
          // state's own last character); anything else walks the failure chain.
          const prev = p >= 2 ? text.charCodeAt(p - 2) : 0x10000;
          t = (w & NEAR_FAIL) !== 0 && (c | prev) < 128 ? pair[classOf[prev]! * classes + classOf[c]!]! : step(a, state, c);
        }
        state = t;
      }
      w = word[state]!;
      if ((w & (OUTPUT | SHALLOW)) !== 0) {
        if ((w & OUTPUT) !== 0) {
          const o = outputAt(a, state);
          const len = a.outLength[o]!;
          this.addMatch(base + p - len, base + p, len, a.outSecret[o]!);
        }
        if ((w & SHALLOW) !== 0) {
          const d = depth[state]!;
          if (p - d > sessionStart && p >= until) {
            this.state = -1;
            return p - d;
          }
        }
      }
    }
    if (final) {
      this.state = -1;
      this.pos = base + n;
      return -1;
    }
    this.state = state;
    this.pos = base + n;
    this.sessionStart = base + sessionStart;
    this.sessionUntil = base + until;
    return -1;
  }

  private addMatch(start: number, end: number, length: number, secret: number): void {
    const rs = this.regionStart;
    const re = this.regionEnd;
    const rl = this.regionLength;
    const rsec = this.regionSecret;
    let s = start;
    let e = end;
    let bestLength = length;
    let bestSecret = secret;
    // Ends arrive in order, so only the latest regions can overlap or touch the new occurrence.
    while (rs.length > this.first && re[re.length - 1]! >= s) {
      const i = rs.length - 1;
      s = Math.min(s, rs[i]!);
      e = Math.max(e, re[i]!);
      if (rl[i]! > bestLength || (rl[i] === bestLength && rsec[i]! < bestSecret)) {
        bestLength = rl[i]!;
        bestSecret = rsec[i]!;
      }
      rs.pop();
      re.pop();
      rl.pop();
      rsec.pop();
    }
    rs.push(s);
    re.push(e);
    rl.push(bestLength);
    rsec.push(bestSecret);
  }

  /** Where text stops being final: no later occurrence can start before it, nor touch a region ending before it. */
  private holdFrom(final: boolean): number {
    if (final) return Number.POSITIVE_INFINITY;
    if (this.state >= 0) return this.pos - this.automaton.depth[this.state]!;
    return this.pos;
  }

  private emit(final: boolean): string {
    const hold = this.holdFrom(final);
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
    this.base = this.emitted = this.pos = this.first = this.sessionStart = this.sessionUntil = 0;
    this.state = -1;
    this.regionStart = [];
    this.regionEnd = [];
    this.regionLength = [];
    this.regionSecret = [];
  }
}
