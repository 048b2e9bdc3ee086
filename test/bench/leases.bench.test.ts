import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type * as Tables from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as CommandHandlerModule from '../../domain/commandHandler';
import type { RunCommand, RunState } from '../../domain/run';
import type * as RunModule from '../../domain/run';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import type * as SecretsModule from '../../domain/services/secrets';
import type * as WorkspacesModule from '../../domain/services/workspaces';
import type * as StreamsModule from '../../domain/streams';
import type * as ChannelsModule from '../../infra/sandbox/channels/index';
import type { CredentialRequest } from '../../infra/sandbox/credentialDelivery';
import type * as ClockModule from '../../infra/system/systemClock';
import type * as IdsModule from '../../infra/system/randomUuidIds';
import type * as RandomModule from '../../infra/system/systemRandom';
import type * as StoreModule from '../../infra/tables/tableEventStore';
import type * as VaultModule from '../../infra/vault/encryptedTableVault';
import type * as KeyModule from '../../infra/vault/localFileKeyWrapper';
import type * as ResolverModule from '../../infra/vault/secretResolver';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { fromDist, packageForDist } from './support/dist';
import { FigureSink } from './support/figures';
import { quantile } from './support/timing';

const { TableClient } = packageForDist<typeof Tables>('@azure/data-tables');
const { handleCommand } = fromDist<typeof CommandHandlerModule>('domain/commandHandler.js');
const { runDecider, runStatus } = fromDist<typeof RunModule>('domain/run.js');
const { setSecret } = fromDist<typeof SecretsModule>('domain/services/secrets.js');
const { createWorkspace } = fromDist<typeof WorkspacesModule>('domain/services/workspaces.js');
const { projectionKeys, runStreamId } = fromDist<typeof StreamsModule>('domain/streams.js');
const { preparerFor } = fromDist<typeof ChannelsModule>('infra/sandbox/channels/index.js');
const { systemClock } = fromDist<typeof ClockModule>('infra/system/systemClock.js');
const { randomUuidIds } = fromDist<typeof IdsModule>('infra/system/randomUuidIds.js');
const { systemRandom } = fromDist<typeof RandomModule>('infra/system/systemRandom.js');
const { TableEventStore } = fromDist<typeof StoreModule>('infra/tables/tableEventStore.js');
const { EncryptedTableVault } = fromDist<typeof VaultModule>('infra/vault/encryptedTableVault.js');
const { LocalFileKeyWrapper } = fromDist<typeof KeyModule>('infra/vault/localFileKeyWrapper.js');
const { CachingSecretResolver } = fromDist<typeof ResolverModule>('infra/vault/secretResolver.js');

const PROCESSES = 150;
const LEASES_PER_RUN = 25;
const SECRETS = ['API_TOKEN', 'NPM_TOKEN', 'DEPLOY_KEY'] as const;
const sink = new FigureSink('leases');
const caller = { actor: 'user:bench', correlationId: 'bench' };

let keyDir: string;
let credentialRoot: string;
let tables: Tables.TableClient[] = [];
let deps: ServiceDependencies;
let vault: VaultModule.EncryptedTableVault;
let workspaceId: string;

function aResolver(ttlMs: number): ResolverModule.CachingSecretResolver {
  // As the composition root builds it: freshness from the secret metadata projection, one point read.
  return new CachingSecretResolver({
    vault,
    clock: systemClock,
    ttlMs,
    currentVersion: async (ws, name) => {
      const row = await deps.store.readProjection(ws, projectionKeys.secret(name));
      return row && row.exists === true ? Number(row.version) : undefined;
    },
  });
}

async function runCommand(runId: string, command: RunCommand): Promise<RunState> {
  const result = await handleCommand(deps, {
    workspaceId, streamId: runStreamId(runId), decider: runDecider, command, actor: 'system:bench', correlationId: runId,
    project: (state: RunState) => [{ kind: 'upsert', key: projectionKeys.run(runId), value: runStatus(state) }],
  });
  return result.state;
}

async function newRun(): Promise<string> {
  const runId = randomUUID();
  const deadline = new Date(Date.now() + 3_600_000).toISOString();
  await runCommand(runId, { type: 'RequestRun', runId, workspaceId, deadline, specRef: `specs/${runId}`, specDigest: "none" });
  return runId;
}

interface Steps {
  resolve: number;
  grant: number;
  deliver: number;
  release: number;
  total: number;
}

/** One credential-bearing process: resolve, grant the lease, deliver a temp file, then clean up and release. */
async function oneProcess(resolver: ResolverModule.CachingSecretResolver, runId: string, name: string, check: boolean): Promise<Steps> {
  const t0 = performance.now();
  const secret = await resolver.resolve(workspaceId, name);
  const t1 = performance.now();
  const leaseId = randomUUID();
  await runCommand(runId, {
    type: 'GrantLease', leaseId, secretName: name, secretVersion: secret.version, operation: 'turn:1', channel: 'temp-file',
    expiresAt: new Date(Date.now() + 600_000).toISOString(),
  });
  const t2 = performance.now();
  const credentialDir = path.join(credentialRoot, leaseId);
  const request: CredentialRequest = { secretName: name, value: secret.value, use: 'file', as: 'API_KEY_FILE' };
  await mkdir(credentialDir, { mode: 0o700 });
  const delivery = await preparerFor(request)(request, { credentialDir });
  const t3 = performance.now();
  const file = delivery.env['API_KEY_FILE']!;
  if (check) expect(readFileSync(file, 'utf8')).toBe(secret.value);
  await delivery.cleanup();
  const state = await runCommand(runId, { type: 'ReleaseLease', leaseId });
  const t4 = performance.now();
  if (check) {
    expect(existsSync(file)).toBe(false);
    expect(state.activeLeases[leaseId]).toBeUndefined();
  }
  rmSync(credentialDir, { recursive: true, force: true });
  return { resolve: t1 - t0, grant: t2 - t1, deliver: t3 - t2, release: t4 - t3, total: t4 - t0 };
}

beforeAll(async () => {
  const connection = azuriteConnectionString();
  const eventTable = TableClient.fromConnectionString(connection, uniqueName('benchlease'), { allowInsecureConnection: true });
  const vaultTable = TableClient.fromConnectionString(connection, uniqueName('benchvault'), { allowInsecureConnection: true });
  tables = [eventTable, vaultTable];
  keyDir = mkdtempSync(path.join(tmpdir(), 'bench-key-'));
  credentialRoot = mkdtempSync(path.join(tmpdir(), 'bench-cred-'));
  vault = new EncryptedTableVault({ table: vaultTable, keyWrapper: LocalFileKeyWrapper.open(path.join(keyDir, 'master.key')), clock: systemClock });
  await vault.ensureTable();
  const store = new TableEventStore(eventTable, { clock: systemClock, random: systemRandom, ids: randomUuidIds });
  deps = { store, vault, resolver: aResolver(60_000), clock: systemClock, random: systemRandom, ids: randomUuidIds };
  workspaceId = (await createWorkspace(deps, caller, 'bench')).id;
  for (const name of SECRETS) await setSecret(deps, caller, { workspaceId, name, value: randomBytes(24).toString('hex'), uses: { command: 'members' } });
});

afterAll(async () => {
  await Promise.all(tables.map((t) => t.deleteTable().catch(() => undefined)));
  for (const dir of [keyDir, credentialRoot]) if (dir) rmSync(dir, { recursive: true, force: true });
});

const ms = (x: number): string => `${x.toFixed(2)} ms`;
const medianOf = (steps: readonly Steps[], key: keyof Steps): number => quantile(steps.map((s) => s[key]), 0.5);

describe('leases and vault calls', () => {
  it('per process: resolve + grant + deliver + release, warm and cold, against a bare vault resolve', async () => {
    const resolver = aResolver(60_000);
    const warm: Steps[] = [];
    const cold: Steps[] = [];
    const bare: number[] = [];
    let runId = await newRun();
    await oneProcess(resolver, runId, SECRETS[0], true); // warm-up: connections, JIT, the data key
    // Interleaved, so load from elsewhere on the machine falls on all three alike.
    for (let i = 0; i < PROCESSES; i++) {
      if (i > 0 && i % LEASES_PER_RUN === 0) runId = await newRun();
      const name = SECRETS[i % SECRETS.length]!;
      const t = performance.now();
      await vault.resolve(workspaceId, name);
      bare.push(performance.now() - t);
      resolver.invalidate(workspaceId, name);
      cold.push(await oneProcess(resolver, runId, name, i % 50 === 0));
      warm.push(await oneProcess(resolver, runId, name, i % 50 === 0));
    }
    const stats = resolver.stats();
    expect(stats.vaultCalls).toBe(PROCESSES + 1);
    expect(stats.cacheHits).toBe(PROCESSES);

    const bareP50 = quantile(bare, 0.5);
    const bareP99 = quantile(bare, 0.99);
    sink.add({ name: 'vault.resolve.p50Ms', value: bareP50, unit: 'ms', note: `EncryptedTableVault.resolve on Azurite (point read + AES-GCM open), ${PROCESSES} calls` });
    sink.add({ name: 'vault.resolve.p99Ms', value: bareP99, unit: 'ms' });
    for (const [kind, steps] of [['warm', warm], ['cold', cold]] as const) {
      const totals = steps.map((s) => s.total);
      const breakdown = `median resolve ${ms(medianOf(steps, 'resolve'))}, grant ${ms(medianOf(steps, 'grant'))}, deliver ${ms(medianOf(steps, 'deliver'))}, release ${ms(medianOf(steps, 'release'))}`;
      sink.add({
        name: `leases.${kind}.p50Ms`, value: quantile(totals, 0.5), unit: 'ms', baseline: { name: 'vault.resolve.p50Ms', value: bareP50 },
        note: `${kind === 'warm' ? 'resolver cache hit (one projection read for freshness)' : 'cache miss: projection read + vault'}; ${breakdown}`,
      });
      sink.add({ name: `leases.${kind}.p99Ms`, value: quantile(totals, 0.99), unit: 'ms', baseline: { name: 'vault.resolve.p99Ms', value: bareP99 } });
    }
  });

  it('vault calls for a run of 20 operations on 3 secrets', async () => {
    const simulate = async (ttlMs: number): Promise<ResolverModule.ResolverStats> => {
      const resolver = aResolver(ttlMs);
      for (let op = 0; op < 20; op++) {
        const resolved = await resolver.resolve(workspaceId, SECRETS[op % SECRETS.length]!);
        expect(resolved.version).toBe(1);
      }
      return resolver.stats();
    };
    const cached = await simulate(60_000);
    const uncached = await simulate(0);
    expect(cached.resolves).toBe(20);
    expect(uncached.vaultCalls).toBe(20);
    sink.add({
      name: 'leases.simulatedRun.vaultCalls', value: cached.vaultCalls, unit: 'calls',
      baseline: { name: 'leases.simulatedRun.vaultCallsUncached', value: uncached.vaultCalls },
      targets: [{ on: 'value', max: SECRETS.length }],
      note: `20 operations round-robin over ${SECRETS.length} secrets within one 60 s cache window; ${cached.cacheHits} cache hits; the baseline is the same run with the cache off`,
    });
  });
});
