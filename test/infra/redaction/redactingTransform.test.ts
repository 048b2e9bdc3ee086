import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRedactor } from '../../../domain/redaction';
import { RedactingTransform, redactingTransform } from '../../../infra/redaction/redactingTransform';
import { redactThenTruncate, TRUNCATION_MARKER } from '../../../infra/redaction/truncate';

const VALUE = 'pässwörd-ünïcode-😀-€';
const redactor = createRedactor([{ name: 'DB_PASSWORD', value: VALUE }]);

async function through(transform: RedactingTransform, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), transform, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) out.push(chunk);
  });
  return Buffer.concat(out);
}

/** Splits `bytes` at the given offsets (taken modulo its length). */
function splitAt(bytes: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  return [...points, bytes.length].map((p, i, all) => bytes.subarray(i === 0 ? 0 : all[i - 1], p));
}

describe('RedactingTransform', () => {
  const text = `user=admin password=${VALUE} json=${JSON.stringify({ pw: VALUE })} b64=${Buffer.from(VALUE).toString('base64')} — ok ✓`;
  const bytes = Buffer.from(text);
  const expected = redactor.redact(text);

  it('masks a value split at every byte offset, including inside multi-byte characters', async () => {
    expect(expected).not.toContain('pässwörd');
    for (let cut = 0; cut <= bytes.length; cut++) {
      const out = await through(redactingTransform(redactor), [bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(out.toString('utf8'), `cut at byte ${cut}`).toBe(expected);
    }
  });

  it('gives the batch result for any chunking of the bytes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (at) => {
        const out = await through(redactingTransform(redactor), splitAt(bytes, at));
        expect(out.toString('utf8')).toBe(expected);
      }),
      { numRuns: 150 },
    );
  });

  it('passes text without secrets through byte for byte, one byte per chunk', async () => {
    const clean = Buffer.from('héllo wörld — 中文 😀 ✓\n');
    const out = await through(redactingTransform(redactor), [...clean].map((b) => Buffer.from([b])));
    expect(out.equals(clean)).toBe(true);
  });

  it('decodes invalid UTF-8 to U+FFFD, as Node does', async () => {
    const broken = Buffer.from([0x61, 0xc3, 0x62, 0xe2, 0x82]);
    const out = await through(redactingTransform(redactor), [broken]);
    expect(out.toString('utf8')).toBe(broken.toString('utf8'));
  });

  it('truncates after redaction: a value cut by the limit is masked, not half shown', async () => {
    const input = Buffer.from(`0123456789${VALUE}${'y'.repeat(100)}`);
    for (let maxBytes = TRUNCATION_MARKER.length; maxBytes < 60; maxBytes++) {
      const out = await through(redactingTransform(redactor, { maxBytes }), splitAt(input, [7, 13, 21]));
      expect(out.length, `maxBytes ${maxBytes}`).toBeLessThanOrEqual(maxBytes);
      expect(out.toString('utf8').endsWith(TRUNCATION_MARKER)).toBe(true);
      expect(out.toString('utf8')).not.toContain('pässw');
      expect(Buffer.from(out.toString('utf8')).equals(out)).toBe(true); // never cut inside a character
    }
  });

  it('writes everything, with no marker, when the redacted output fits exactly', async () => {
    const input = Buffer.from(`ab ${VALUE} é`);
    const redacted = Buffer.from(redactor.redact(input.toString()));
    expect((await through(redactingTransform(redactor, { maxBytes: redacted.length }), [input])).equals(redacted)).toBe(true);
    const oneShort = await through(redactingTransform(redactor, { maxBytes: redacted.length - 1 }), [input]);
    expect(oneShort.toString().endsWith(TRUNCATION_MARKER)).toBe(true);
  });
});

describe('redactThenTruncate', () => {
  it('redacts first, then cuts at a character boundary within the byte limit', () => {
    const text = `${'é'.repeat(5)}${VALUE}tail`;
    for (let maxBytes = 0; maxBytes < 50; maxBytes++) {
      const out = redactThenTruncate(redactor, text, maxBytes);
      expect(Buffer.byteLength(out)).toBeLessThanOrEqual(maxBytes);
      expect(out).not.toContain('pässw');
      expect(out).not.toMatch(/\ufffd/);
    }
    expect(redactThenTruncate(redactor, text, 1000)).toBe(redactor.redact(text));
    // 30 bytes: five two-byte é, nine bytes of the mask, the 11-byte marker.
    expect(redactThenTruncate(redactor, text, 30)).toBe(`ééééé[REDACTED${TRUNCATION_MARKER}`);
  });
});
