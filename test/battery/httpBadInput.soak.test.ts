import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCase, fuzzCase, type FuzzTarget, meaningfulRecords, recentCases } from '../support/batteryFuzz';
import { startFuzzTarget } from '../support/batteryFuzzSetup';
import { BatteryTally } from '../support/batteryRuns';

/** The same property as httpBadInput.test.ts, at soak size. */
const RUNS = 20_000;
const tally = new BatteryTally();
let t: FuzzTarget;

beforeAll(async () => {
  t = await startFuzzTarget();
}, 90_000);

afterAll(async () => {
  console.log(`last requests:\n${recentCases.join('\n')}`);
  console.log(tally.line('HTTP bad input (soak)'));
  await t?.backend.close();
});

describe('bad input over real HTTP on every route of the local host, at soak size', () => {
  it(`answers ${RUNS} fuzzed requests with 4xx problem bodies, never 5xx, never a value back, storing nothing`, async () => {
    let before = await meaningfulRecords(t);
    await fc.assert(
      fc.asyncProperty(fuzzCase, async (c) => {
        tally.requests++;
        before = (await checkCase(c, t, before)).stored;
      }),
      { numRuns: RUNS },
    );
    const scan = await t.backend.leakScan(t.secrets);
    console.log(scan.text);
    tally.scannedBytes += scan.bytes;
    tally.leakHits += scan.hits.length;
    expect(scan.hits).toEqual([]);
  }, 600_000);
});
