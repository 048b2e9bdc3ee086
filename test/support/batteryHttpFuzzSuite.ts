import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCase, fuzzCase, type FuzzTarget, meaningfulRecords, recentCases } from './batteryFuzz';
import { startFuzzTarget } from './batteryFuzzSetup';
import { BatteryTally } from './batteryRuns';

/** The HTTP bad-input property over every route of the local host; `npm test` and the soak differ in size only. */
export function describeHttpFuzz(options: { name: string; runs: number; timeoutMs: number }): void {
  const tally = new BatteryTally();
  let t: FuzzTarget;

  beforeAll(async () => {
    t = await startFuzzTarget();
  }, 90_000);

  afterAll(async () => {
    console.log(`last requests:\n${recentCases.join('\n')}`);
    console.log(tally.line(options.name));
    await t?.backend.close();
  });

  describe(`bad input over real HTTP on every route of the local host (${options.name})`, () => {
    it(`answers ${options.runs} fuzzed requests with 4xx problem bodies, never 5xx, never a value back, storing nothing`, async () => {
      let before = await meaningfulRecords(t);
      await fc.assert(
        fc.asyncProperty(fuzzCase, async (c) => {
          tally.requests++;
          before = (await checkCase(c, t, before)).stored;
        }),
        { numRuns: options.runs },
      );
      const scan = await t.backend.leakScan(t.secrets);
      console.log(scan.text);
      tally.scannedBytes += scan.bytes;
      tally.leakHits += scan.hits.length;
      expect(scan.hits).toEqual([]);
    }, options.timeoutMs);
  });
}
