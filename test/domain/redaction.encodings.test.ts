import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asciiBytes, base64, base64Core, base64Padded, BASE64_STANDARD, BASE64_URL, hexOf, utf8Bytes, utf8Length } from '../../domain/redaction/bytes';
import { encodedForms, jsonEscape, legacyEscape, percentEncode, xmlEscape } from '../../domain/redaction/encodings';

// The domain writes its own encoders (no Buffer there); Node's are the reference they must agree with.

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
const anyText = fc.string({ unit: fc.oneof(fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), loneSurrogate), maxLength: 40 });
const wellFormedText = fc.string({ unit: 'binary', maxLength: 40 });

describe('hand-written encoders agree with Node', () => {
  it('UTF-8 bytes, lone surrogates included', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(utf8Bytes(text)).toEqual([...Buffer.from(text, 'utf8')]);
      }),
    );
  });

  it('base64 and base64url, padded and not', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (raw) => {
        const bytes = [...raw];
        expect(base64Padded(bytes, BASE64_STANDARD)).toBe(Buffer.from(raw).toString('base64'));
        expect(base64(bytes, BASE64_URL)).toBe(Buffer.from(raw).toString('base64url'));
      }),
    );
  });

  it('the shifted base64 core is what any blob holding the bytes at that offset contains', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 7 }), fc.uint8Array({ minLength: 1, maxLength: 30 }), fc.uint8Array({ maxLength: 5 }), (pre, value, post) => {
        const shift = (pre.length % 3) as 0 | 1 | 2;
        const blob = Buffer.concat([pre, value, post]).toString('base64');
        expect(blob).toContain(base64Core([...value], shift, BASE64_STANDARD));
      }),
    );
  });

  it('JSON escaping without options is JSON.stringify without its quotes', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(jsonEscape(text)).toBe(JSON.stringify(text).slice(1, -1));
      }),
    );
  });

  it('ASCII-only JSON escaping parses back to the value', () => {
    fc.assert(
      fc.property(wellFormedText, (text) => {
        const escaped = jsonEscape(text, { asciiOnly: true });
        expect(escaped).toMatch(/^[\x20-\x7e]*$/);
        expect(JSON.parse(`"${escaped}"`)).toBe(text);
        expect(JSON.parse(`"${jsonEscape(text, { dotnet: true, upper: true })}"`)).toBe(text);
      }),
    );
  });

  it('percent encoding matches encodeURIComponent, encodeURI and URLSearchParams', () => {
    const component = { safe: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()", spaceAsPlus: false };
    const form = { safe: 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._', spaceAsPlus: true };
    fc.assert(
      fc.property(wellFormedText, (text) => {
        expect(percentEncode(utf8Bytes(text), component, true)).toBe(encodeURIComponent(text));
        expect(percentEncode(utf8Bytes(text), form, true)).toBe(new URLSearchParams({ k: text }).toString().slice(2));
      }),
    );
    expect(encodedForms('a b/c?d=e&f#g+h', 8)).toContain(encodeURI('a b/c?d=e&f#g+h'));
  });

  it('the one byte counter agrees with Buffer.byteLength, lone surrogates included', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(utf8Length(text)).toBe(Buffer.byteLength(text, 'utf8'));
      }),
    );
  });

  it('every byte percent-encoded, in both cases, and hex, as Node writes them', () => {
    const everyByte = { safe: '', spaceAsPlus: false };
    fc.assert(
      fc.property(anyText, (text) => {
        const hex = Buffer.from(text, 'utf8').toString('hex');
        expect(percentEncode(utf8Bytes(text), everyByte, false)).toBe(hex.replace(/../g, '%$&'));
        expect(percentEncode(utf8Bytes(text), everyByte, true)).toBe(hex.toUpperCase().replace(/../g, '%$&'));
        expect(hexOf(utf8Bytes(text), false)).toBe(hex);
        expect(hexOf(utf8Bytes(text), true)).toBe(hex.toUpperCase());
      }),
    );
  });

  it('the legacy escape() form is what escape() writes', () => {
    const legacy = (globalThis as unknown as { escape: (s: string) => string }).escape;
    fc.assert(
      fc.property(anyText, (text) => {
        expect(legacyEscape(text)).toBe(legacy(text));
      }),
    );
  });

  it('a base64-of-base64 core is what any double encoding of a blob holding the bytes contains', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 7 }), fc.uint8Array({ minLength: 1, maxLength: 30 }), fc.uint8Array({ maxLength: 5 }), fc.uint8Array({ maxLength: 7 }), fc.uint8Array({ maxLength: 5 }),
        (innerPre, value, innerPost, outerPre, outerPost) => {
          const inner = Buffer.concat([innerPre, value, innerPost]).toString('base64');
          const twice = Buffer.concat([outerPre, Buffer.from(inner), outerPost]).toString('base64');
          const innerShift = (innerPre.length % 3) as 0 | 1 | 2;
          const innerCore = base64Core([...value], innerShift, BASE64_STANDARD);
          const at = 4 * Math.floor(innerPre.length / 3) + Math.ceil((8 * innerShift) / 6);
          expect(inner.slice(at, at + innerCore.length)).toBe(innerCore);
          const outerShift = ((outerPre.length + at) % 3) as 0 | 1 | 2;
          expect(twice).toContain(base64Core(asciiBytes(innerCore), outerShift, BASE64_STANDARD));
        },
      ),
    );
  });

  it('XML escaping with numeric references round-trips through a decoder', () => {
    const decode = (xml: string): string =>
      xml.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, ref: string) =>
        ref[0] === '#'
          ? String.fromCodePoint(ref[1]?.toLowerCase() === 'x' ? parseInt(ref.slice(2), 16) : Number(ref.slice(1)))
          : ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[ref]!,
      );
    fc.assert(
      fc.property(wellFormedText, (text) => {
        for (const numeric of ['dec', 'hexUpper', 'hexLower'] as const) {
          const escaped = xmlEscape(text, { quot: '&quot;', apos: '&apos;', numeric });
          expect(escaped).not.toMatch(/[<>"'\u0080-\uffff]/);
          expect(decode(escaped)).toBe(text);
        }
      }),
    );
  });
});
