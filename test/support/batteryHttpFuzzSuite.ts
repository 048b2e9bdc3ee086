import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from './batteryHttp';
import { backgroundRecords, checkCase, fuzzCase, type FuzzTarget, logAfter, recentCases, storedByRequest } from './batteryFuzz';
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
    console.log(`records the platform's own jobs wrote during the fuzz: ${backgroundRecords.length}\n${backgroundRecords.join('\n')}`);
    console.log(tally.line(options.name));
    await t?.backend.close();
  });

  describe(`bad input over real HTTP on every route of the local host (${options.name})`, () => {
    it(`answers ${options.runs} fuzzed requests with 4xx problem bodies, never 5xx, never a value back, storing nothing`, async () => {
      let head = (await logAfter(t)).head;
      await fc.assert(
        fc.asyncProperty(fuzzCase, async (c) => {
          tally.requests++;
          head = (await checkCase(c, t, head)).head;
        }),
        { numRuns: options.runs },
      );
      const scan = await t.backend.leakScan(t.secrets);
      console.log(scan.text);
      tally.scannedBytes += scan.bytes;
      tally.leakHits += scan.hits.length;
      expect(scan.hits).toEqual([]);
    }, options.timeoutMs);

    it('attributes a record a request stores to that request, so the property above would see one', async () => {
      const { head } = await logAfter(t);
      const reply = await rawRequest(t.backend.host!.port, 'PUT', `/api/workspaces/${t.ws}/members/carol`, {
        authorization: `Bearer ${t.owner}`, 'content-type': 'application/json', 'x-correlation-id': 'fuzz-attribution-check',
      }, JSON.stringify({ role: 'member' }));
      expect(reply.status, reply.body).toBe(200);
      const appeared = (await logAfter(t, head)).records;
      expect(appeared.map((r) => r.meta.correlationId)).toContain('fuzz-attribution-check');
      expect(appeared.filter(storedByRequest).length).toBeGreaterThan(0);
    });
  });
}
