import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import type { Clock } from '../../../domain/ports/clock';
import type { SigningKeyPolicy } from '../../../domain/signingKeys';
import { defaultSigningKeyPolicy } from '../../../domain/signingKeys';
import { SigningKeyCheckpointer } from '../../../infra/identity/headCheckpointer';
import { type RotationRecorder, SigningKeys, platformLogRecorder } from '../../../infra/identity/signingKeys';
import { TableSigningKeyRepository } from '../../../infra/identity/signingKeysTable';
import { randomUuidIds } from '../../../infra/system/randomUuidIds';
import { systemRandom } from '../../../infra/system/systemRandom';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { LocalFileKeyWrapper } from '../../../infra/vault/localFileKeyWrapper';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

/** A clock the test moves by hand; sleeping is instant, so retry backoffs cost nothing. */
export class ManualClock implements Clock {
  constructor(private current: Date = new Date('2030-01-06T03:00:00.000Z')) {}
  now(): Date {
    return new Date(this.current.getTime());
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
  async sleep(): Promise<void> {}
}

export const MINUTE = 60_000;
export const DAY = 24 * 60 * MINUTE;

export const tableClient = (name: string): TableClient => TableClient.fromConnectionString(azuriteConnectionString(), name, { allowInsecureConnection: true });

/**
 * One platform as composition builds it, over real Azurite tables: the key table, the master key file, the key
 * ring, the checkpointer and an event store that signs with it and records rotations in the platform log.
 * `another()` is a second instance of the same platform (its own caches, same storage).
 */
export function aPlatform(options: {
  clock?: ManualClock; policy?: SigningKeyPolicy; keyTable?: string; eventTable?: string; masterKeyFile?: string;
  /** Wraps the platform-log recorder (a test makes the log unavailable); `another()` gets the plain one. */
  recorder?: (record: RotationRecorder) => RotationRecorder;
} = {}) {
  const clock = options.clock ?? new ManualClock();
  const policy = options.policy ?? defaultSigningKeyPolicy;
  const keyTable = options.keyTable ?? uniqueName('signingkeys');
  const eventTable = options.eventTable ?? uniqueName('signedlog');
  const masterKeyFile = options.masterKeyFile ?? path.join(mkdtempSync(path.join(tmpdir(), 'dp-signing-')), 'master.key');
  const repository = new TableSigningKeyRepository(tableClient(keyTable), LocalFileKeyWrapper.open(masterKeyFile));
  const record = platformLogRecorder(() => ({ store, clock, random: systemRandom }), randomUuidIds);
  const keys = new SigningKeys({ repository, clock, policy, recorder: options.recorder ? options.recorder(record) : record });
  const checkpointer = new SigningKeyCheckpointer(keys);
  const store = new TableEventStore(tableClient(eventTable), { clock, checkpointer });
  return {
    clock, policy, keyTable, eventTable, masterKeyFile, repository, keys, checkpointer, store,
    another: () => aPlatform({ clock, policy, keyTable, eventTable, masterKeyFile }),
  };
}

export type Platform = ReturnType<typeof aPlatform>;
