import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { createRedactor, encodedForms, maskFor, type RedactableSecret } from '../../domain/redaction';
import { PatternPrefixes } from '../../domain/redaction/patternPrefixes';

const MIN = 8;
const NAMES = ['ALPHA', 'BETA', 'GAMMA_KEY', 'DELTA'];

// Values avoid [ and ]: a value spelled inside a mask's own text (say "REDACTED") could not be removed by
// any masking, so that corner is excluded here and documented instead.
const special = fc.constantFrom(' ', '"', "'", '\\', '<', '>', '&', '/', '+', '=', '%', '?', '#', ':', '\n', '\r\n', '\t', 'é', 'ß', '中', '€', '😀', '\u2028', '\u0001');
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const valueUnit = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.') },
  { weight: 3, arbitrary: special },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter((c) => c !== '[' && c !== ']') },
  { weight: 1, arbitrary: loneSurrogate },
);
const secretValue = fc
  .string({ unit: valueUnit, minLength: 3, maxLength: 30 })
  .filter((v) => Buffer.byteLength(v) >= MIN && !NAMES.some((n) => maskFor(n).includes(v)));
const secrets = fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), value: secretValue }), {
  minLength: 1,
  maxLength: 4,
  selector: (s) => s.value,
});
const filler = fc.string({ unit: fc.oneof(valueUnit, fc.constantFrom('[', ']', 'REDACTED')), maxLength: 12 });

/** Some text with values of `list` spelled in random encoded forms, between random filler. */
const textWith = (list: RedactableSecret[]) =>
  fc
    .array(fc.tuple(filler, fc.nat(list.length - 1), fc.nat(), fc.boolean()), { maxLength: 6 })
    .chain((pieces) =>
      fc.tuple(
        fc.constant(
          pieces
            .map(([fill, which, form, embed]) => {
              if (!embed) return fill;
              const forms = encodedForms(list[which]!.value, MIN);
              return fill + forms[form % forms.length]!;
            })
            .join(''),
        ),
        filler,
      ),
    )
    .map(([text, tail]) => text + tail);

/** Random cut points: the same text fed to the stream in pieces. */
const cuts = fc.array(fc.nat(), { maxLength: 8 });
function streamed(redactor: ReturnType<typeof createRedactor>, text: string, at: number[]): { out: string; afterEach: string[] } {
  const points = [...new Set(at.map((p) => p % (text.length + 1)))].sort((a, b) => a - b);
  const stream = redactor.stream();
  let out = '';
  let from = 0;
  const afterEach: string[] = [];
  for (const p of [...points, text.length]) {
    out += stream.push(text.slice(from, p));
    afterEach.push(out);
    from = p;
  }
  return { out: out + stream.end(), afterEach };
}

/** The obvious, slow specification: find every occurrence with indexOf, merge overlapping or touching ones. */
function reference(list: RedactableSecret[], text: string, min = MIN): string {
  const names = [...new Set(list.map((s) => s.name))].sort();
  const owner = new Map<string, string>();
  for (const name of names) for (const s of list.filter((x) => x.name === name)) for (const f of encodedForms(s.value, min)) if (!owner.has(f)) owner.set(f, name);
  const hits: { start: number; end: number; name: string }[] = [];
  for (const [form, name] of owner)
    for (let i = text.indexOf(form); i >= 0; i = text.indexOf(form, i + 1)) hits.push({ start: i, end: i + form.length, name });
  hits.sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (let i = 0; i < hits.length; ) {
    let { start, end } = hits[i]!;
    let best = hits[i]!;
    for (i++; i < hits.length && hits[i]!.start <= end; i++) {
      const h = hits[i]!;
      end = Math.max(end, h.end);
      const len = h.end - h.start;
      const bestLen = best.end - best.start;
      if (len > bestLen || (len === bestLen && h.name < best.name)) best = h;
    }
    out += text.slice(at, start) + maskFor(best.name);
    at = end;
  }
  return out + text.slice(at);
}

/** Batch and stream (fed in pieces cut at `at`) both give the specification's answer, which is returned with the redactor. */
function expectAgreesWithSpecification(list: RedactableSecret[], text: string, at: number[], min?: number): { redactor: ReturnType<typeof createRedactor>; expected: string } {
  const redactor = min === undefined ? createRedactor(list) : createRedactor(list, { minLength: min });
  const expected = reference(list, text, min);
  expect(redactor.redact(text)).toBe(expected);
  expect(streamed(redactor, text, at).out).toBe(expected);
  return { redactor, expected };
}

/** Spellings of a value computed with Node's own encoders, independent of the module's list. */
function independentForms(value: string): string[] {
  const bytes = Buffer.from(value);
  const forms = [value, JSON.stringify(value).slice(1, -1)];
  forms.push(value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;'));
  forms.push(value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\t/g, '\\t').replace(/\r/g, '\\r'));
  if (!/[\ud800-\udfff]/.test(value.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) forms.push(encodeURIComponent(value), new URLSearchParams({ k: value }).toString().slice(2));
  for (const encoding of ['base64', 'base64url'] as const)
    for (let shift = 0; shift < 3; shift++) {
      const blob = Buffer.concat([Buffer.alloc(shift), bytes]).toString(encoding);
      forms.push(blob.slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + bytes.length)) / 6)));
    }
  for (const line of value.split(/\r\n|\r|\n/)) if (Buffer.byteLength(line) >= MIN) forms.push(line);
  return forms;
}

describe('redaction properties', () => {
  it('leaves no value and no encoded form in the output, batch or streamed in random pieces', () => {
    fc.assert(
      fc.property(
        secrets.chain((list) => fc.tuple(fc.constant(list), textWith(list), cuts)),
        ([list, text, at]) => {
          const redactor = createRedactor(list);
          const out = redactor.redact(text);
          for (const { value } of list) for (const form of independentForms(value)) expect(out).not.toContain(form);
          for (const { value } of list) for (const form of encodedForms(value, MIN)) expect(out).not.toContain(form);
          expect(streamed(redactor, text, at).out).toBe(out);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('masks per-byte percent-encoding (both cases), hex and base64 of base64 inside any text, computed by Node', () => {
    const bytes = fc.uint8Array({ maxLength: 7 });
    fc.assert(
      fc.property(secrets, fc.nat(), filler, filler, bytes, bytes, bytes, bytes, (list, which, before, after, innerPre, innerPost, outerPre, outerPost) => {
        const { value } = list[which % list.length]!;
        const raw = Buffer.from(value, 'utf8');
        const hex = raw.toString('hex');
        const twice = Buffer.concat([outerPre, Buffer.from(Buffer.concat([innerPre, raw, innerPost]).toString('base64')), outerPost]).toString('base64');
        // The characters of the double encoding that depend only on the value, by Node's encoder: the inner
        // base64 characters of the value at its alignment, then their outer characters at theirs.
        const stable = (data: Buffer, shift: number): string =>
          Buffer.concat([Buffer.alloc(shift), data]).toString('base64').slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + data.length)) / 6));
        const innerCore = stable(raw, innerPre.length % 3);
        const at = 4 * Math.floor(innerPre.length / 3) + Math.ceil((8 * (innerPre.length % 3)) / 6);
        const doubleCore = stable(Buffer.from(innerCore), (outerPre.length + at) % 3);
        expect(twice).toContain(doubleCore);
        const redactor = createRedactor(list);
        for (const [form, mustGo] of [
          [hex.replace(/../g, '%$&'), hex.replace(/../g, '%$&')],
          [hex.toUpperCase().replace(/../g, '%$&'), hex.toUpperCase().replace(/../g, '%$&')],
          [hex, hex],
          [hex.toUpperCase(), hex.toUpperCase()],
          [twice, doubleCore],
        ] as const) {
          const text = `${before}${form}${after}`;
          expect(redactor.matches(text), form).toBe(true);
          expect(redactor.redact(text)).not.toContain(mustGo);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('agrees exactly with the indexOf-and-merge specification', () => {
    fc.assert(
      fc.property(
        secrets.chain((list) => fc.tuple(fc.constant(list), textWith(list))),
        ([list, text]) => {
          expect(createRedactor(list).redact(text)).toBe(reference(list, text));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees with the specification for values of a few code units, as the launch guard builds them', () => {
    // The guard asks about one short managed value with a minimum of its own length: windows of 1 to 3 code
    // units, every position sampled, pairs shorter than a window.
    const abc = (min: number, max: number) => fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: min, maxLength: max });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }).chain((min) =>
          fc.tuple(fc.constant(min), fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), value: abc(min, min + 6) }), { minLength: 1, maxLength: 3, selector: (s) => s.value })),
        ),
        abc(0, 60),
        cuts,
        ([min, list], text, at) => {
          const { redactor, expected } = expectAgreesWithSpecification(list, text, at, min);
          expect(redactor.matches(text)).toBe(expected !== text);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees with the specification on a two-letter alphabet, where matches overlap everywhere', () => {
    const ab = (min: number, max: number) => fc.string({ unit: fc.constantFrom('a', 'b'), minLength: min, maxLength: max });
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), value: ab(MIN, 14) }), { minLength: 1, maxLength: 5, selector: (s) => s.value }),
        ab(0, 80),
        cuts,
        (list, text, at) => {
          expectAgreesWithSpecification(list, text, at);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees with the specification for long values and large chunks that split them anywhere', () => {
    // Chunks longer than the stream's 256-unit bridge take its other path; values longer than it span seams.
    const unit = fc.constantFrom('a', 'b', 'c', 'é', '\n', '"');
    const long = (min: number, max: number) => fc.string({ unit, minLength: min, maxLength: max, size: 'max' });
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), value: long(MIN, 700) }), { minLength: 1, maxLength: 3, selector: (s) => s.value }),
        // Some pieces stop short of a whole form: a long false start across a seam must come out verbatim.
        fc.array(fc.tuple(long(0, 900), fc.nat(), fc.nat(), fc.option(fc.double({ min: 0, max: 1, noNaN: true }))), { maxLength: 5 }),
        fc.array(fc.nat({ max: 5000 }), { maxLength: 6 }),
        (list, pieces, at) => {
          const text = pieces
            .map(([fill, which, pick, stopAt]) => {
              const forms = encodedForms(list[which % list.length]!.value, MIN);
              const form = forms[pick % forms.length]!;
              return fill + (stopAt === null ? form : form.slice(0, Math.floor(form.length * stopAt)));
            })
            .join('');
          expectAgreesWithSpecification(list, text, at);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('masks an occurrence once when a chunk that follows held-back text is re-scanned past a cut-off candidate', () => {
    // Two long values share a long ending, so their windows sit near their openings and a sample's candidate
    // runs far past the stream's 256-unit bridge: that sample, and those after it, are tested again with the
    // whole chunk. On a two-letter alphabet nearly every sample names such a candidate. An occurrence the
    // bridge already wrote out must not be masked a second time.
    const ab = (min: number, max: number) => fc.string({ unit: fc.constantFrom('a', 'b'), minLength: min, maxLength: max, size: 'max' });
    fc.assert(
      fc.property(ab(16, 40), ab(16, 40), ab(200, 500), ab(MIN, 20), ab(0, 240), ab(300, 900), fc.integer({ min: 1, max: 40 }), (head1, head2, ending, short, before, after, first) => {
        fc.pre(head1 !== head2 && !(head1 + ending).includes(short) && !(head2 + ending).includes(short));
        const list = [
          { name: 'ALPHA', value: head1 + ending },
          { name: 'BETA', value: short },
          { name: 'GAMMA_KEY', value: head2 + ending },
        ];
        const text = before + short + after;
        expectAgreesWithSpecification(list, text, [Math.min(first, text.length)]);
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with the specification on periodic values inside text that repeats them, with a slip here and there', () => {
    // Occurrences of a value repeating a short unit overlap at every multiple of its period; a new one is
    // compared only past the last, and a shift that is no period is refused unread. A changed character
    // inside the repetition must break exactly the occurrences that cover it.
    const unit = fc.string({ unit: fc.constantFrom('a', 'b'), minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(unit, fc.integer({ min: 16, max: 120 }), fc.option(fc.constantFrom('a', 'b', 'c')), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 400 })), { minLength: 1, maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom('a', 'b', 'c')), { maxLength: 4 }), cuts, (u, length, ending, pieces, slips, at) => {
        const repeated = (n: number) => u.repeat(Math.ceil(n / u.length) + 1);
        const periodic = repeated(length).slice(0, length);
        const value = ending === null ? periodic : periodic.slice(0, -1) + ending;
        // Runs of the repetition, each starting at its own phase: an occurrence can follow another at a shift
        // that is no period.
        const chars = [...pieces.map(([phase, n]) => repeated(n + u.length).slice(phase % u.length, (phase % u.length) + n)).join('')];
        for (const [where, c] of slips) chars[where % chars.length] = c;
        const text = chars.join('');
        const list = [{ name: 'ALPHA', value }];
        expectAgreesWithSpecification(list, text, at);
      }),
      { numRuns: 300 },
    );
  });

  it('holds back a value longer than a kilobyte (a PEM key) that a chunk cuts anywhere, and masks it whole', () => {
    // Values over LONG_VALUE code units are found open at the end of a chunk from the samples the scan noted,
    // not by the search behind the ordinary ones; a cut far into one must hold all of it back.
    const unit = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
    fc.assert(
      fc.property(
        fc.string({ unit, minLength: 1100, maxLength: 1600 }),
        fc.string({ unit: fc.constantFrom('x', ' ', 'A', '\n'), maxLength: 40 }),
        fc.nat(),
        // Per mille of the form's length (fast-check's doubles crowd at 0, which never cuts inside the value).
        fc.array(fc.integer({ min: 1, max: 999 }), { minLength: 1, maxLength: 3 }),
        (value, filler, pick, perMille) => {
          const list = [{ name: 'ALPHA', value }, { name: 'BETA', value: 'short-one-123' }];
          const forms = encodedForms(value, MIN);
          const form = forms[pick % forms.length]!;
          const text = `${filler}${form}${filler}`;
          const redactor = createRedactor(list);
          const expected = reference(list, text);
          const at = perMille.map((m) => filler.length + Math.floor((m * form.length) / 1000));
          const { out, afterEach } = streamed(redactor, text, at);
          expect(out).toBe(expected);
          // After each cut inside the value, none of it has been written: all of it so far is held back.
          for (const written of afterEach.slice(0, -1)) {
            expect(written.length).toBeLessThanOrEqual(filler.length);
            expect(written).toBe(text.slice(0, written.length));
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('agrees with the specification where a periodic value makes the held-back search hand over to the automaton', () => {
    // Each start in a run of `a`s compares as far as the run goes against a value of `a`s and a `b`: at a chunk's
    // end after such runs the bisecting search would cost the square of the run, so past its budget the automaton
    // takes over from the start it reached. Both must hold back the same suffix, and the handover must happen.
    const built = vi.spyOn(PatternPrefixes.prototype, 'buildAutomaton');
    try {
      fc.assert(
        fc.property(
          fc.integer({ min: 1100, max: 1600 }),
          fc.array(fc.tuple(fc.integer({ min: 0, max: 120 }), fc.constantFrom('b', 'c', 'ab')), { minLength: 4, maxLength: 10 }),
          fc.array(fc.integer({ min: 1, max: 999 }), { minLength: 1, maxLength: 4 }),
          (length, runs, perMille) => {
            const list = [{ name: 'ALPHA', value: 'a'.repeat(length) + 'b' }, { name: 'BETA', value: 'short-one-123' }];
            const text = runs.map(([shorter, end]) => 'a'.repeat(length - shorter) + end).join('');
            expectAgreesWithSpecification(list, text, perMille.map((m) => Math.floor((m * text.length) / 1000)));
          },
        ),
        { numRuns: 40 },
      );
      expect(built).toHaveBeenCalled();
    } finally {
      built.mockRestore();
    }
  });

  it('agrees with the specification when many secrets share a prefix, so their q-grams are crowded', () => {
    // 50-70 values of one token family (`ghp_`, its percent-encoded spelling) share their openings, so their
    // windows must move past them, and the forms of one value share pairs; near misses (a form cut short, then
    // a wrong tail) must stay verbatim.
    const family = fc.constantFrom('ghp_', 'sk-proj-', 'npm_');
    const tail = fc.string({ unit: fc.constantFrom(...'abc012XY'), minLength: 6, maxLength: 24 });
    const crowd = fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), value: fc.tuple(family, tail).map(([f, t]) => f + t) }), {
      minLength: 50, maxLength: 70, selector: (s) => s.value,
    });
    fc.assert(
      fc.property(
        crowd,
        fc.array(fc.tuple(fc.string({ unit: fc.constantFrom(' ', '=', '"', 'a', '%', '_'), maxLength: 6 }), fc.nat(), fc.nat(), fc.option(fc.double({ min: 0.3, max: 1, noNaN: true }), { freq: 2 }), fc.constantFrom(...'abc012XYZ%')), { maxLength: 12 }),
        cuts,
        (list, pieces, at) => {
          const text = pieces
            .map(([fill, which, pick, stopAt, wrong]) => {
              const forms = encodedForms(list[which % list.length]!.value, MIN);
              const form = forms[pick % forms.length]!;
              return fill + (stopAt === null ? form : form.slice(0, Math.floor(form.length * stopAt)) + wrong);
            })
            .join('');
          expectAgreesWithSpecification(list, text, at);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('never masks near misses (a form\'s opening, then a wrong tail) and always masks the real forms among them', () => {
    // What the prefilter's pair table and tail check are for: text made of the secrets' own openings with
    // wrong tails must come out verbatim, a real form anywhere among them must still be masked, and the
    // result must be the specification's, streamed or not. Token families share openings, so some pairs
    // are crowded and some forms are short enough to be keyed by one q-gram.
    const alnum = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'];
    const shaped = fc.oneof(
      fc.tuple(fc.constantFrom('ghp_', 'sk-proj-', 'npm_', 'https://deploy:'), fc.string({ unit: fc.constantFrom(...alnum), minLength: 4, maxLength: 36 })).map(([f, t]) => f + t),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 8, maxLength: 40 }),
      fc.string({ unit: valueUnit, minLength: 8, maxLength: 24 }),
    );
    const many = fc.uniqueArray(fc.record({ name: fc.constantFrom(...NAMES), value: shaped }), { minLength: 1, maxLength: 40, selector: (s) => s.value })
      .filter((list) => list.every((s) => Buffer.byteLength(s.value) >= MIN && !NAMES.some((n) => maskFor(n).includes(s.value))));
    const token = fc.tuple(fc.nat(), fc.nat(), fc.double({ min: 0.5, max: 1, noNaN: true, maxExcluded: true }), fc.constantFrom(...alnum, '%', '\\', '&'), fc.string({ unit: fc.constantFrom(...alnum), maxLength: 40 }));
    fc.assert(
      fc.property(
        many,
        fc.array(fc.tuple(token, fc.boolean(), fc.constantFrom(' ', '=', '"', '\n', ' key=')), { minLength: 1, maxLength: 16 }),
        cuts,
        (list, pieces, at) => {
          const allForms = list.flatMap((s) => encodedForms(s.value, MIN));
          const misses: string[] = [];
          const text = pieces
            .map(([[which, pick, keep, wrong, tail], real, sep]) => {
              const forms = encodedForms(list[which % list.length]!.value, MIN);
              const form = forms[pick % forms.length]!;
              if (real) return sep + form;
              const cut = Math.floor(form.length * keep);
              const miss = form.slice(0, cut) + (wrong === form[cut] ? (wrong === 'a' ? 'b' : 'a') : wrong) + tail.slice(0, Math.max(0, form.length - cut - 1));
              if (allForms.some((f) => (sep + miss).includes(f))) return sep;
              misses.push(miss);
              return sep + miss;
            })
            .join('');
          const { redactor } = expectAgreesWithSpecification(list, text, at);
          const onlyMisses = misses.join(' ');
          if (!allForms.some((f) => onlyMisses.includes(f))) {
            expect(Object.is(redactor.redact(onlyMisses), onlyMisses)).toBe(true);
            expect(redactor.matches(onlyMisses)).toBe(false);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('returns text without secrets unchanged, as the identical string, and streams it through', () => {
    fc.assert(
      fc.property(secrets, fc.string({ unit: valueUnit, maxLength: 200 }), cuts, (list, text, at) => {
        const forms = list.flatMap((s) => encodedForms(s.value, MIN));
        fc.pre(!forms.some((f) => text.includes(f)));
        const redactor = createRedactor(list);
        expect(Object.is(redactor.redact(text), text)).toBe(true);
        expect(redactor.matches(text)).toBe(false);
        expect(streamed(redactor, text, at).out).toBe(text);
      }),
      { numRuns: 300 },
    );
  });

  it('holds back only the longest suffix that could still start a value', () => {
    fc.assert(
      fc.property(
        secrets.chain((list) => {
          // Text made of pieces of the values themselves, so chunk ends often sit inside a possible start.
          const pieces = list.flatMap((s) => encodedForms(s.value, MIN)).map((f) => f.slice(0, Math.max(1, f.length - 1)));
          return fc.tuple(fc.constant(list), fc.array(fc.oneof(fc.constantFrom(...pieces), filler), { maxLength: 6 }), cuts);
        }),
        ([list, parts, at]) => {
          const text = parts.join('');
          const forms = list.flatMap((s) => encodedForms(s.value, MIN));
          fc.pre(!forms.some((f) => text.includes(f)));
          const redactor = createRedactor(list);
          const points = [...new Set(at.map((p) => p % (text.length + 1)))].sort((a, b) => a - b);
          const { afterEach } = streamed(redactor, text, at);
          [...points, text.length].forEach((p, i) => {
            const seen = text.slice(0, p);
            let held = 0;
            for (let k = 1; k <= seen.length; k++) if (forms.some((f) => f.length > k && f.startsWith(seen.slice(seen.length - k)))) held = k;
            expect(afterEach[i]).toBe(seen.slice(0, seen.length - held));
          });
        },
      ),
      { numRuns: 300 },
    );
  });
});
