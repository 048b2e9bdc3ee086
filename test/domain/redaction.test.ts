import { describe, expect, it } from 'vitest';
import { isDomainError } from '../../domain/errors';
import { createRedactor, encodedForms, type RedactableSecret } from '../../domain/redaction';

const TOKEN = 'sk-live-7f3a9c2e1b';
const aRedactor = (...secrets: RedactableSecret[]) => createRedactor(secrets.length > 0 ? secrets : [{ name: 'API_KEY', value: TOKEN }]);
const around = (inner: string) => `before ${inner} after`;

/** The base64 characters of `blob` that depend only on the bytes at [from, from + length). */
function stableBase64(prefix: Buffer, value: Buffer, encoding: 'base64' | 'base64url'): { blob: string; stable: string } {
  const blob = Buffer.concat([prefix, value, Buffer.from('~tail')]).toString(encoding);
  const from = prefix.length;
  return { blob, stable: blob.slice(Math.ceil((8 * from) / 6), Math.floor((8 * (from + value.length)) / 6)) };
}

describe('createRedactor: what is masked', () => {
  it('masks the raw value with its name', () => {
    expect(aRedactor().redact(around(TOKEN))).toBe(around('[REDACTED:API_KEY]'));
  });

  it('masks base64 and base64url at every byte offset inside a larger blob', () => {
    const value = Buffer.from('tök3n+/?>>~~secret');
    const redactor = aRedactor({ name: 'B64', value: value.toString() });
    for (const encoding of ['base64', 'base64url'] as const)
      for (let offset = 0; offset < 6; offset++) {
        const { blob, stable } = stableBase64(Buffer.from('x'.repeat(offset)), value, encoding);
        const out = redactor.redact(around(blob));
        expect(out, `${encoding} at offset ${offset}`).toContain('[REDACTED:B64]');
        expect(out).not.toContain(stable);
      }
  });

  it('masks a standalone base64 blob including its padding', () => {
    const value = 'standalone-secret-1';
    const out = aRedactor({ name: 'S', value }).redact(around(Buffer.from(value).toString('base64')));
    expect(out).toBe(around('[REDACTED:S]'));
  });

  it('masks URI encodings: encodeURIComponent, lower-case hex, form encoding and encodeURI', () => {
    const value = 'p@ss wörd/?&=+1';
    const redactor = aRedactor({ name: 'URI', value });
    const component = encodeURIComponent(value);
    const spellings = [
      component,
      component.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()),
      new URLSearchParams({ k: value }).toString().slice(2),
      encodeURI(value),
    ];
    for (const spelling of spellings) expect(redactor.redact(`https://x.test/?q=${spelling}&n=1`)).toBe('https://x.test/?q=[REDACTED:URI]&n=1');
  });

  it('masks JSON escaping, \\u escapes for non-ASCII, and JSON inside a JSON string', () => {
    const value = 'quote" back\\slash tab\t ünï 😀';
    const redactor = aRedactor({ name: 'J', value });
    expect(redactor.redact(JSON.stringify({ token: value }))).toBe('{"token":"[REDACTED:J]"}');
    const asciiOnly = JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    expect(redactor.redact(asciiOnly)).toBe('"[REDACTED:J]"');
    const nested = JSON.stringify({ body: JSON.stringify({ token: value }) });
    expect(redactor.redact(nested)).toBe(JSON.stringify({ body: '{"token":"[REDACTED:J]"}' }));
  });

  it('masks XML escaping, named and numeric entities', () => {
    const value = `a<b>&"c'd ∑€`;
    const redactor = aRedactor({ name: 'X', value });
    const named = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
    const numeric = named.replace(/[^\x00-\x7f]/gu, (c) => `&#${c.codePointAt(0)};`);
    const html = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;');
    const attribute = value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
    for (const spelling of [named, numeric, html, attribute]) expect(redactor.redact(`<v a="${spelling}"/>`)).toBe('<v a="[REDACTED:X]"/>');
  });

  it('masks backslash escaping of \\ " \' newline and tab', () => {
    const value = `it's "a"\\b\tc\nline-two`;
    const escaped = value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\t/g, '\\t');
    expect(aRedactor({ name: 'E', value }).redact(`x='${escaped}'`)).toBe(`x='[REDACTED:E]'`);
  });

  it('masks each line of a multi-line value on its own, but not lines below the minimum', () => {
    const value = '-----BEGIN KEY-----\nMIIBVwIBADANBgkq\nab\n-----END KEY-----';
    const redactor = aRedactor({ name: 'PEM', value });
    expect(redactor.redact(value)).toBe('[REDACTED:PEM]');
    expect(redactor.redact(value.replace(/\n/g, '\r\n'))).toBe('[REDACTED:PEM]\r\n[REDACTED:PEM]\r\nab\r\n[REDACTED:PEM]');
    expect(redactor.redact('line: MIIBVwIBADANBgkq only')).toBe('line: [REDACTED:PEM] only');
    expect(redactor.redact('short ab stays')).toBe('short ab stays');
    expect(redactor.redact('    MIIBVwIBADANBgkq  ')).toBe('    [REDACTED:PEM]  ');
  });

  it('masks the previous value of a rotation window under the same name', () => {
    const redactor = aRedactor({ name: 'K', value: 'old-value-123' }, { name: 'K', value: 'new-value-456' });
    expect(redactor.redact('old-value-123 new-value-456')).toBe('[REDACTED:K] [REDACTED:K]');
  });
});

describe('createRedactor: overlapping and touching matches', () => {
  it('makes back-to-back occurrences one mask', () => {
    expect(aRedactor().redact(`${TOKEN}${TOKEN}, ${TOKEN}`)).toBe('[REDACTED:API_KEY], [REDACTED:API_KEY]');
  });

  it('makes overlapping values of different secrets one mask named after the longest occurrence', () => {
    const redactor = aRedactor({ name: 'LEFT', value: 'AAAA1111BBBB' }, { name: 'RIGHT', value: '1111BBBB2222xx' });
    expect(redactor.redact('<AAAA1111BBBB2222xx>')).toBe('<[REDACTED:RIGHT]>');
  });

  it('names a tie after the secret whose name sorts first, whatever the input order', () => {
    const secrets = [
      { name: 'ZED', value: 'ZZZZ1111BBBB' },
      { name: 'ALPHA', value: '1111BBBB2222' },
    ];
    expect(createRedactor(secrets).redact('ZZZZ1111BBBB2222')).toBe('[REDACTED:ALPHA]');
    expect(createRedactor([...secrets].reverse()).redact('ZZZZ1111BBBB2222')).toBe('[REDACTED:ALPHA]');
  });

  it('names a value contained in another after the container', () => {
    const redactor = aRedactor({ name: 'INNER', value: 'middle-part' }, { name: 'OUTER', value: 'the-middle-part-here' });
    expect(redactor.redact('x the-middle-part-here y middle-part')).toBe('x [REDACTED:OUTER] y [REDACTED:INNER]');
  });

  it('names a region after its longest occurrence even when that one lies inside two shorter ones found first', () => {
    // Occurrences are found in the order of their windows, so the longest may come after the region that
    // contains it; it must still give the region its name (at every alignment of the sampled positions).
    const core = '0123456789ABCDEFGH';
    const redactor = aRedactor({ name: 'ALPHA', value: core.slice(0, 10) }, { name: 'BETA', value: core.slice(8, 18) }, { name: 'GAMMA', value: core.slice(2, 16) });
    for (let shift = 0; shift < 16; shift++) expect(redactor.redact(`${'.'.repeat(shift)}${core}.`)).toBe(`${'.'.repeat(shift)}[REDACTED:GAMMA].`);
  });

  it('gives two secrets with the same value the name that sorts first', () => {
    const redactor = aRedactor({ name: 'SECOND', value: 'same-value-1' }, { name: 'FIRST', value: 'same-value-1' });
    expect(redactor.redact('same-value-1')).toBe('[REDACTED:FIRST]');
  });
});

describe('createRedactor: refusals and identity', () => {
  it('refuses values below the minimum, naming every such secret and never the value', () => {
    let caught: unknown;
    try {
      createRedactor([
        { name: 'OK_ONE', value: 'long-enough-value' },
        { name: 'TINY', value: 'x7Q!' },
        { name: 'ALSO_TINY', value: 'ab' },
      ]);
    } catch (error) {
      caught = error;
    }
    expect(isDomainError(caught) && caught.code).toBe('SECRET.VALUE_TOO_SHORT');
    const error = caught as Error;
    expect(error.message).toContain('TINY');
    expect(error.message).toContain('ALSO_TINY');
    expect(error.message).not.toContain('OK_ONE');
    for (const leaked of ['x7Q!', 'long-enough-value']) expect(`${error.message}${error.stack}${JSON.stringify(error)}`).not.toContain(leaked);
  });

  it('measures the minimum in UTF-8 bytes, as set does', () => {
    expect(() => createRedactor([{ name: 'CJK', value: '秘密鍵' }])).not.toThrow(); // 3 characters, 9 bytes
    expect(() => createRedactor([{ name: 'CJK', value: '秘密' }])).toThrow(/CJK/);
    expect(() => createRedactor([{ name: 'S', value: 'abcd' }], { minLength: 4 })).not.toThrow();
    expect(() => createRedactor([{ name: 'S', value: 'abcdefghijk' }], { minLength: 12 })).toThrow(/S/);
  });

  it('returns the very same string when nothing matches, and with no secrets at all', () => {
    const text = `2024-05-01 INFO GET /api ${'x'.repeat(1000)} sk-live-7f3a9c2e1 (one short)`;
    expect(aRedactor().redact(text)).toBe(text);
    expect(Object.is(aRedactor().redact(text), text)).toBe(true);
    expect(createRedactor([]).redact(text)).toBe(text);
    const stream = createRedactor([]).stream();
    expect(stream.push('abc') + stream.end()).toBe('abc');
  });

  it('answers matches() for contained and encoded values, as the launch guard asks', () => {
    const redactor = aRedactor();
    expect(redactor.matches(TOKEN)).toBe(true);
    expect(redactor.matches(`Bearer ${TOKEN}`)).toBe(true);
    expect(redactor.matches(Buffer.from(`user:${TOKEN}`).toString('base64'))).toBe(true);
    expect(redactor.matches(encodeURIComponent(`"${TOKEN}"`))).toBe(true);
    expect(redactor.matches('sk-live-7f3a9c2e1')).toBe(false);
    expect(redactor.matches('')).toBe(false);
  });

  it('carries nothing from one redact() or matches() call to the next on the same redactor', () => {
    // Whole-text calls share one scanner: a call ending in a value's prefix must not complete it in the next.
    const redactor = aRedactor();
    const half = TOKEN.length >> 1;
    expect(redactor.redact(`x ${TOKEN.slice(0, half)}`)).toBe(`x ${TOKEN.slice(0, half)}`);
    expect(redactor.redact(`${TOKEN.slice(half)} y`)).toBe(`${TOKEN.slice(half)} y`);
    expect(redactor.matches(TOKEN.slice(0, half))).toBe(false);
    expect(redactor.matches(TOKEN.slice(half))).toBe(false);
    expect(redactor.redact(`${TOKEN} ${TOKEN.slice(0, half)}`)).toBe(`[REDACTED:API_KEY] ${TOKEN.slice(0, half)}`);
    expect(redactor.matches(TOKEN)).toBe(true);
    expect(redactor.redact(`a ${TOKEN}`)).toBe('a [REDACTED:API_KEY]');
  });

  it('lists the encoded forms of a value, raw first', () => {
    const forms = encodedForms('a"b c/d+é', 8);
    expect(forms[0]).toBe('a"b c/d+é');
    expect(forms).toEqual(expect.arrayContaining(['a\\"b c/d+é', 'a%22b%20c%2Fd%2B%C3%A9', 'a&quot;b c/d+é', 'YSJiIGMvZCvDqQ']));
  });
});

describe('stream()', () => {
  const text = `start ${TOKEN} mid ${Buffer.from(`u:${TOKEN}`).toString('base64')} x${TOKEN}${TOKEN} end`;

  it('gives the batch result however the text is split, even one code unit at a time', () => {
    const redactor = aRedactor();
    const expected = redactor.redact(text);
    for (let at = 0; at <= text.length; at++) {
      const stream = redactor.stream();
      expect(stream.push(text.slice(0, at)) + stream.push(text.slice(at)) + stream.end(), `split at ${at}`).toBe(expected);
    }
    const stream = redactor.stream();
    expect([...text].map((c) => stream.push(c)).join('') + stream.end()).toBe(expected);
  });

  it('holds back only a possible start of a value and emits the rest at once', () => {
    const stream = aRedactor().stream();
    expect(stream.push('hello sk-li')).toBe('hello ');
    expect(stream.push('ve-7f')).toBe('');
    expect(stream.push('3a9c2e1b and on')).toBe('[REDACTED:API_KEY] and on');
    // Ends in a character no form starts with (a letter may start a base64-of-base64 core).
    expect(stream.push(' sk-live-nope!')).toBe(' sk-live-nope!');
    expect(stream.push(' sk')).toBe(' ');
    expect(stream.end()).toBe('sk');
  });

  it('holds a finished match while the next value could still touch it', () => {
    const stream = aRedactor().stream();
    expect(stream.push(TOKEN)).toBe('');
    expect(stream.push('sk-')).toBe('');
    expect(stream.push('live-7f3a9c2e1b!')).toBe('[REDACTED:API_KEY]!');
  });

  it('keeps a long false start across the seam of a large chunk verbatim, and masks a long value there', () => {
    const value = `x${'a'.repeat(600)}y`;
    const redactor = aRedactor({ name: 'LONG', value });
    const falseStart = `start x${'a'.repeat(599)}z ${'q'.repeat(1000)}`;
    const real = `start ${value} ${'q'.repeat(1000)}`;
    for (const [text, expected] of [
      [falseStart, falseStart],
      [real, `start [REDACTED:LONG] ${'q'.repeat(1000)}`],
    ] as const)
      for (const cut of [7, 100, 350, 600, 606]) {
        const stream = redactor.stream();
        expect(stream.push(text.slice(0, cut)) + stream.push(text.slice(cut)) + stream.end(), `cut at ${cut}`).toBe(expected);
      }
  });

  it('is ready for new text after end()', () => {
    const stream = aRedactor().stream();
    expect(stream.push(`a ${TOKEN.slice(0, 5)}`) + stream.end()).toBe(`a ${TOKEN.slice(0, 5)}`);
    expect(stream.push(TOKEN) + stream.end()).toBe('[REDACTED:API_KEY]');
  });
});
