import { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import type * as RedactionModule from '../../domain/redaction';
import type { Redactor } from '../../domain/redaction';
import type * as TransformModule from '../../infra/redaction/redactingTransform';
import { chunksOf } from './support/chunks';
import { fromDist } from './support/dist';
import { FigureSink } from './support/figures';
import { makeLogText, makeSecrets, type LogText } from './support/logText';
import { bestOf, collectGarbage } from './support/timing';

const MiB = 1024 * 1024;
const TEXT_BYTES = 64 * MiB;
const CHUNK_BYTES = 64 * 1024;
/** replaceAll per form is too slow at 1,000 secrets for 64 MiB; it is measured on the first 4 MiB. */
const NAIVE_BYTES = 4 * MiB;
const RUNS = 3;
const COUNTS = [1, 10, 100, 1000] as const;

const { createRedactor, encodedForms, maskFor } = fromDist<typeof RedactionModule>('domain/redaction.js');
const { RedactingTransform } = fromDist<typeof TransformModule>('infra/redaction/redactingTransform.js');
const sink = new FigureSink('redaction');
const mb = (s: string): number => Buffer.byteLength(s) / 1e6;

interface NaiveMask {
  readonly mask: string;
  readonly forms: readonly string[];
}

/** The same encoded forms the redactor masks, computed before timing starts. */
function naiveMasks(secrets: ReadonlyArray<{ name: string; value: string }>): NaiveMask[] {
  return secrets.map(({ name, value }) => ({ mask: maskFor(name), forms: encodedForms(value, 8) }));
}

/** What per-secret maskers do: one replaceAll per secret and per encoded form. */
function naiveRedact(text: string, masks: readonly NaiveMask[]): string {
  let out = text;
  for (const { mask, forms } of masks) for (const form of forms) out = out.replaceAll(form, mask);
  return out;
}


function streamRedact(redactor: Redactor, chunks: readonly string[]): string[] {
  const stream = redactor.stream();
  const out = chunks.map((c) => stream.push(c));
  out.push(stream.end());
  return out;
}

/** The Transform's own floor: decode each chunk to a string and encode it back, masking nothing. */
function codecPassThrough(): Transform {
  const decoder = new StringDecoder('utf8');
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, Buffer.from(decoder.write(chunk), 'utf8'));
    },
    flush(callback) {
      callback(null, Buffer.from(decoder.end(), 'utf8'));
    },
  });
}

async function timeTransform(transform: Transform, buffers: readonly Buffer[]): Promise<{ seconds: number; bytes: number }> {
  collectGarbage();
  const start = performance.now();
  let bytes = 0;
  transform.on('data', (chunk: Buffer) => (bytes += chunk.length));
  for (const b of buffers) transform.write(b);
  transform.end();
  await finished(transform);
  return { seconds: (performance.now() - start) / 1000, bytes };
}

const bufferChunks = (text: string): Buffer[] => {
  const raw = Buffer.from(text, 'utf8');
  const buffers: Buffer[] = [];
  for (let i = 0; i < raw.length; i += CHUNK_BYTES) buffers.push(raw.subarray(i, i + CHUNK_BYTES));
  return buffers;
};

/** Every leaked line came out masked, with no trace of the form that leaked there. */
function expectLeaksMasked(log: LogText, redacted: string): void {
  const lines = redacted.split('\n');
  for (const { line, form } of log.leaks) {
    expect(lines[line]).toContain('[REDACTED:SECRET_');
    expect(lines[line]!.includes(form)).toBe(false);
  }
}

describe('redactor throughput', () => {
  // The floor: the fastest one could possibly look for one string, one indexOf pass for a string that is absent.
  let floorMBps = 0;
  let transformFloorMBps = 0;

  it('measures the indexOf floor on 64 MiB', () => {
    const { text } = makeLogText(TEXT_BYTES, []);
    const absent = `ghp_${'Z'.repeat(36)}`;
    const timed = bestOf(RUNS, () => text.indexOf(absent));
    expect(timed.result).toBe(-1);
    floorMBps = mb(text) / timed.seconds;
    sink.add({ name: 'redaction.floor.indexOfMBps', value: floorMBps, unit: 'MB/s', note: `one indexOf pass for one absent 40-char pattern over ${mb(text).toFixed(1)} MB` });
  });

  it('measures the pass-through Transform floor (UTF-8 decode and encode, no masking) on 64 MiB', async () => {
    const { text } = makeLogText(TEXT_BYTES, []);
    const buffers = bufferChunks(text);
    let best: { seconds: number; bytes: number } | undefined;
    for (let i = 0; i < RUNS; i++) {
      const t = await timeTransform(codecPassThrough(), buffers);
      if (!best || t.seconds < best.seconds) best = t;
    }
    expect(best!.bytes).toBe(Buffer.byteLength(text));
    transformFloorMBps = mb(text) / best!.seconds;
    sink.add({ name: 'redaction.floor.codecTransformMBps', value: transformFloorMBps, unit: 'MB/s', note: 'a Transform that only decodes 64 KiB Buffers to strings and encodes them back: the ceiling for any string-based redacting Transform' });
  });

  for (const count of COUNTS) {
    it(`${count} secrets: redact and stream 64 MiB, naive replaceAll on 4 MiB`, async () => {
      collectGarbage();
      const secrets = makeSecrets(count);
      const build = bestOf(1, () => createRedactor(secrets));
      const redactor = build.result;
      const log = makeLogText(TEXT_BYTES, secrets);
      const size = mb(log.text);
      const chunks = chunksOf(log.text, CHUNK_BYTES);

      const batch = bestOf(RUNS, () => redactor.redact(log.text));
      expectLeaksMasked(log, batch.result);
      const streamed = bestOf(RUNS, () => streamRedact(redactor, chunks));
      expect(streamed.result.join('')).toBe(batch.result);

      let transform: { seconds: number; bytes: number } | undefined;
      if (count >= 100) {
        const buffers = bufferChunks(log.text);
        for (let i = 0; i < RUNS; i++) {
          const t = await timeTransform(new RedactingTransform(redactor), buffers);
          if (!transform || t.seconds < transform.seconds) transform = t;
        }
        expect(transform!.bytes).toBe(Buffer.byteLength(batch.result));
      }

      const slice = log.text.slice(0, NAIVE_BYTES);
      const masks = naiveMasks(secrets);
      const naive = bestOf(1, () => naiveRedact(slice, masks));
      expect(naive.result.length).toBeLessThanOrEqual(slice.length + 64 * log.leaks.length);
      const naiveMBps = mb(slice) / naive.seconds;

      const key = `redaction.secrets${count}`;
      const targets =
        count === 100
          ? [{ on: 'value' as const, min: 200 }, { on: 'ratio' as const, min: 20 }]
          : count === 1000
            ? [{ on: 'value' as const, min: 100 }]
            : [];
      const floorNote = (v: number): string => `${((100 * v) / floorMBps).toFixed(0)}% of the indexOf floor`;
      sink.add({ name: `${key}.patterns`, value: redactor.patternCount, unit: 'patterns', note: `distinct strings (values x encoded forms); build ${(build.seconds * 1000).toFixed(0)} ms` });
      sink.add({ name: `${key}.naiveMBps`, value: naiveMBps, unit: 'MB/s', note: `replaceAll per secret per form, on the first ${mb(slice).toFixed(1)} MB only` });
      const redactMBps = size / batch.seconds;
      sink.add({
        name: `${key}.redactMBps`, value: redactMBps, unit: 'MB/s', baseline: { name: `${key}.naiveMBps`, value: naiveMBps }, targets,
        note: `${floorNote(redactMBps)}; ${size.toFixed(1)} MB, ${log.leaks.length} leaks, CPU ${(size / batch.cpuSeconds).toFixed(0)} MB/s`,
      });
      const streamMBps = size / streamed.seconds;
      sink.add({
        name: `${key}.streamMBps`, value: streamMBps, unit: 'MB/s', baseline: { name: `${key}.naiveMBps`, value: naiveMBps }, targets,
        note: `${floorNote(streamMBps)}; ${chunks.length} chunks of 64 KiB`,
      });
      if (transform) {
        const transformMBps = size / transform.seconds;
        sink.add({
          name: `${key}.transformMBps`, value: transformMBps, unit: 'MB/s', baseline: { name: `${key}.naiveMBps`, value: naiveMBps }, targets,
          note: `RedactingTransform, Buffers of 64 KiB in and out (UTF-8 decode and encode included); ${((100 * transformMBps) / transformFloorMBps).toFixed(0)}% of the codec pass-through floor`,
        });
      }
    });
  }
});
