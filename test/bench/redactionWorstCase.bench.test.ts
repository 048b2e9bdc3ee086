import { describe, expect, it } from 'vitest';
import type * as RedactionModule from '../../domain/redaction';
import type { Redactor } from '../../domain/redaction';
import { chunksOf } from './support/chunks';
import { fromDist } from './support/dist';
import { FigureSink, type Target } from './support/figures';
import { makeLogText, makeMatchDenseText, makeNearMissText, makeRandomBase64Text, makeSecrets } from './support/logText';
import { bestOf, collectGarbage } from './support/timing';

/**
 * The redactor on text chosen to slow it down, beside ordinary log text of the same size, in one run:
 * an agent controls its own output, so the worst case is the one that matters. Sizes are fixed so that
 * runs compare: 16 MiB per corpus, 64 KiB chunks for the stream, best of 3.
 */
const MiB = 1024 * 1024;
const TEXT_BYTES = 16 * MiB;
const CHUNK_BYTES = 64 * 1024;
const RUNS = 3;
const COUNTS = [100, 1000] as const;

const { createRedactor } = fromDist<typeof RedactionModule>('domain/redaction.js');
const sink = new FigureSink('redactionWorstCase');
const mb = (s: string): number => Buffer.byteLength(s) / 1e6;


function streamRedact(redactor: Redactor, chunks: readonly string[]): string {
  const stream = redactor.stream();
  let out = '';
  for (const c of chunks) out += stream.push(c);
  return out + stream.end();
}

const heapBytes = (): number => {
  for (let i = 0; i < 3; i++) collectGarbage();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const gcExposed = typeof (globalThis as { gc?: unknown }).gc === 'function';

describe('redactor worst case', () => {
  it('memory one redactor keeps, at each count', () => {
    // A first, small build compiles the code: otherwise that, and its garbage, lands in the first difference.
    createRedactor(makeSecrets(5));
    for (const count of COUNTS) {
      const secrets = makeSecrets(count);
      const before = heapBytes();
      const redactor = createRedactor(secrets);
      const retainedMiB = (heapBytes() - before) / MiB;
      sink.add({
        name: `redaction.worst.secrets${count}.redactorMiB`, value: gcExposed ? retainedMiB : null, unit: 'MiB',
        ...(gcExposed ? {} : { unavailable: 'run with node --expose-gc (npm run bench does)' }),
        targets: count === 1000 ? [{ on: 'value', max: 32 }] : [],
        note: `heap and array buffers one redactor keeps after a full GC; ${redactor.patternCount} patterns`,
      });
    }
  });

  for (const count of COUNTS) {
    it(`${count} secrets: ordinary, random base64, near-miss and match-dense text`, () => {
      const secrets = makeSecrets(count);
      const build = bestOf(1, () => createRedactor(secrets));
      const redactor = build.result;
      sink.add({ name: `redaction.worst.secrets${count}.buildMs`, value: build.seconds * 1000, unit: 'ms', note: `${redactor.patternCount} patterns` });

      const ordinary = makeLogText(TEXT_BYTES, secrets);
      const corpora: Array<{ name: string; text: string; check: (out: string) => void }> = [
        {
          name: 'ordinary', text: ordinary.text,
          check: (out) => {
            const lines = out.split('\n');
            for (const { line, form } of ordinary.leaks) expect(lines[line]!.includes(form)).toBe(false);
          },
        },
        { name: 'base64', text: makeRandomBase64Text(TEXT_BYTES), check: (out) => expect(out.includes('[REDACTED:')).toBe(false) },
        { name: 'nearMiss', text: makeNearMissText(TEXT_BYTES, secrets), check: (out) => expect(out.includes('[REDACTED:')).toBe(false) },
      ];
      const dense = makeMatchDenseText(TEXT_BYTES, secrets);
      corpora.push({
        name: 'matchDense', text: dense.text,
        check: (out) => {
          const lines = out.split('\n');
          for (const { line, form } of dense.leaks) {
            expect(lines[line]).toContain('[REDACTED:SECRET_');
            expect(lines[line]!.includes(form)).toBe(false);
          }
        },
      });

      const key = `redaction.worst.secrets${count}`;
      let ordinaryMBps = 0;
      const worst: Array<{ name: string; value: number }> = [];
      for (const { name, text, check } of corpora) {
        const chunks = chunksOf(text, CHUNK_BYTES);
        const batch = bestOf(RUNS, () => redactor.redact(text));
        check(batch.result);
        const streamed = bestOf(RUNS, () => streamRedact(redactor, chunks));
        expect(streamed.result).toBe(batch.result);
        const redactMBps = mb(text) / batch.seconds;
        const streamMBps = mb(text) / streamed.seconds;
        if (name === 'ordinary') ordinaryMBps = redactMBps;
        else if (name !== 'matchDense') worst.push({ name, value: redactMBps });
        const targets: Target[] = name === 'nearMiss' && count === 100 ? [{ on: 'value', min: 500 }, { on: 'ratio', min: 0.5 }] : [];
        sink.add({
          name: `${key}.${name}.redactMBps`, value: redactMBps, unit: 'MB/s',
          ...(name === 'ordinary' ? {} : { baseline: { name: `${key}.ordinary.redactMBps`, value: ordinaryMBps } }),
          targets,
          note: `${mb(text).toFixed(1)} MB, best of ${RUNS}, CPU ${(mb(text) / batch.cpuSeconds).toFixed(0)} MB/s`,
        });
        sink.add({
          name: `${key}.${name}.streamMBps`, value: streamMBps, unit: 'MB/s',
          baseline: { name: `${key}.${name}.redactMBps`, value: redactMBps },
          targets: [{ on: 'ratio', min: 0.9 }],
          note: `stream() fed ${chunks.length} chunks of 64 KiB (cut on UTF-8 bytes, decoded)`,
        });
      }
      const slowest = worst.reduce((a, b) => (b.value < a.value ? b : a));
      sink.add({
        name: `${key}.worstOverOrdinary`, value: slowest.value / ordinaryMBps, unit: 'ratio',
        targets: count === 100 ? [{ on: 'value', min: 0.5 }] : [],
        note: `slowest of random base64 and near-miss (${slowest.name}) over ordinary log text, redact()`,
      });
    });
  }
});
