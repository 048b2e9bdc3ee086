import { afterAll, beforeAll, expect } from 'vitest';
import { startBatteryBackend, type BatteryBackend } from './batteryBackend';
import { BatteryTally, type Call, type SecretUsesByName, seedWorkspace } from './batteryRuns';

export interface BatteryScenario {
  readonly tally: BatteryTally;
  readonly backend: BatteryBackend;
  readonly call: Call;
  readonly ws: string;
  /** Scans everything for the scenario's secrets, counts what it read, and fails on any hit. */
  scanForLeaks(): Promise<Awaited<ReturnType<BatteryBackend['leakScan']>>>;
}

/**
 * One fault scenario's frame: its own backend (Azurite and host), a workspace seeded with `secrets`, and the
 * `BATTERY <name>: …` line printed at the end for CI.
 */
export function batteryScenario(name: string, workspace: string, secrets: Record<string, string>, uses: SecretUsesByName = {}): BatteryScenario {
  const tally = new BatteryTally();
  let backend: BatteryBackend | undefined;
  let seeded: { ws: string; call: Call } | undefined;
  const need = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error(`${name}: the scenario's backend is not started`);
    return value;
  };

  beforeAll(async () => {
    backend = await startBatteryBackend();
    await backend.startHost();
    seeded = await seedWorkspace(backend, workspace, secrets, uses);
  }, 60_000);

  afterAll(async () => {
    console.log(tally.line(name));
    await backend?.close();
  });

  return {
    tally,
    get backend() {
      return need(backend);
    },
    get call() {
      return need(seeded).call;
    },
    get ws() {
      return need(seeded).ws;
    },
    async scanForLeaks() {
      const scan = await need(backend).leakScan(secrets);
      console.log(scan.text);
      tally.scannedBytes += scan.bytes;
      tally.leakHits += scan.hits.length;
      expect(scan.hits).toEqual([]);
      return scan;
    },
  };
}
