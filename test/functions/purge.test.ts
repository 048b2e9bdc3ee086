import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient, TableServiceClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../domain/ports/clock';
import { onRun } from '../../domain/services/runStream';
import { setSecret } from '../../domain/services/secrets';
import {
  purgeWorkspaceIfDue, removeLiveRecordsAndSeal, requestWorkspaceDeletion, softDeleteWorkspaceVault, type WorkspaceLifecycleDependencies,
} from '../../domain/services/workspaceLifecycle';
import { createWorkspace } from '../../domain/services/workspaces';
import { backupWorkspace, restoreWorkspace } from '../../infra/backup/logBackup';
import { TableGatewayBearers } from '../../infra/gateway/tableGatewayBearers';
import { InstanceStore } from '../../infra/localhost/durable/instanceStore';
import { taskHubNames } from '../../infra/localhost/durable/taskHub';
import { TableRunRequestLedger } from '../../infra/messaging/tableRunRequestLedger';
import { BlobRunSpecStore, BlobTranscriptStore } from '../../infra/runs/blobRunStores';
import { blobContainerFor } from '../../infra/storage/storageClients';
import { type DurableInstances, durableClientInstances } from '../../infra/storage/workspaceLeftovers';
import { systemClock } from '../../infra/system/systemClock';
import { TableWorkspaceRecords } from '../../infra/tables/tableWorkspaceRecords';
import { compose, storageLocation } from '../../functions/composition';
import { loadSettings } from '../../functions/settings';
import { SEALED_BLOB_CONTAINERS, WORKSPACE_BLOB_CONTAINERS, blobRemover, workspaceLeftovers } from '../../functions/workspaceLifecycle.wiring';
import { azuriteConnectionString, uniqueName } from '../support/azurite';

const gone = (error: unknown): boolean => (error as { statusCode?: number }).statusCode === 404;

/** Runs `read`, treating a 404 (the table, container or queue was removed meanwhile by another test) as empty. */
async function unlessGone<T>(read: () => Promise<T>, empty: T): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (gone(error)) return empty;
    throw error;
  }
}

/**
 * Every place in the storage account where any of `needles` occurs: table rows (keys and properties), blob names
 * and contents, queue messages (peeked, so other tests' queues are left alone). Other test files create and remove
 * tables, containers and queues while this runs: anything that disappears mid-scan held nothing of ours.
 */
async function findEverywhere(needles: Readonly<Record<string, string>>): Promise<string[]> {
  const connection = azuriteConnectionString();
  const hits: string[] = [];
  const hit = (where: string, text: string) => {
    for (const [label, needle] of Object.entries(needles)) if (text.includes(needle)) hits.push(`${label} @ ${where}`);
  };
  const tables = await unlessGone(async () => {
    const names: string[] = [];
    for await (const t of TableServiceClient.fromConnectionString(connection, { allowInsecureConnection: true }).listTables()) if (t.name) names.push(t.name);
    return names;
  }, []);
  for (const table of tables) {
    const client = TableClient.fromConnectionString(connection, table, { allowInsecureConnection: true });
    await unlessGone(async () => {
      for await (const row of client.listEntities()) hit(`table ${table} ${row.partitionKey}/${row.rowKey}`, JSON.stringify(row));
    }, undefined);
  }
  const blobs = BlobServiceClient.fromConnectionString(connection);
  const containers = await unlessGone(async () => {
    const names: string[] = [];
    for await (const c of blobs.listContainers()) names.push(c.name);
    return names;
  }, []);
  for (const name of containers) {
    const container = blobs.getContainerClient(name);
    await unlessGone(async () => {
      for await (const blob of container.listBlobsFlat()) {
        hit(`blob ${name}/${blob.name}`, blob.name);
        if ((blob.properties.contentLength ?? 0) > 1024 * 1024) continue;
        const body = await unlessGone(async () => (await container.getBlockBlobClient(blob.name).downloadToBuffer()).toString('utf8'), '');
        hit(`blob ${name}/${blob.name} (content)`, body);
      }
    }, undefined);
  }
  const queues = QueueServiceClient.fromConnectionString(connection);
  const queueNames = await unlessGone(async () => {
    const names: string[] = [];
    for await (const q of queues.listQueues()) names.push(q.name);
    return names;
  }, []);
  for (const name of queueNames) {
    const peeked = await unlessGone(async () => (await queues.getQueueClient(name).peekMessages({ numberOfMessages: 32 })).peekedMessageItems, []);
    for (const message of peeked) hit(`queue ${name}`, message.messageText);
  }
  return [...new Set(hits)];
}

describe('purge removes everything of a workspace', () => {
  it('after purge no table, container or queue holds anything of it but its crypto-shredded backups and witnessed heads', async () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'dp-purge-'));
    process.env.DEV_ISSUER_KEY_DIR = path.join(tmp, 'issuer');
    const env = {
      AzureWebJobsStorage: azuriteConnectionString(),
      EVENT_LOG_TABLE: uniqueName('purgelog'),
      VAULT_TABLE: uniqueName('purgevault'),
      SIGNING_KEY_TABLE: uniqueName('purgesigning'),
      BACKUP_KEY_TABLE: uniqueName('purgebackupkeys'),
      BACKUP_CONTAINER: uniqueName('purgearchive'),
      RUN_REQUEST_TABLE: uniqueName('purgeledger'),
      OUTBOX_INDEX_TABLE: uniqueName('purgeoutbox'),
      GATEWAY_BEARER_TABLE: uniqueName('purgebearers'),
      DURABLE_TASK_HUB: uniqueName('purgehub'),
      VAULT_MASTER_KEY_FILE: path.join(tmp, 'master.key'),
    };
    const settings = loadSettings(env);
    const location = storageLocation(settings);
    const platform = compose(settings);
    const { deps } = await platform.services();
    const caller = { actor: 'alice', correlationId: 'c' };

    // A workspace with everything a workspace leaves behind: log, projections, outbox rows and marker, a secret,
    // a run with its spec, transcript, gateway bearer, request-ledger row and Durable instance with history, a
    // finished deletion orchestration, and a backup with its key and witnessed head.
    const { id: ws } = await createWorkspace(deps, caller, 'Doomed');
    const secretValue = 'purge-me-secret-value-0001';
    await setSecret(deps, caller, { workspaceId: ws, name: 'DEPLOY_KEY', value: secretValue });
    const runId = `run-${uniqueName('p')}`;
    const specs = new BlobRunSpecStore(blobContainerFor(location, 'runspecs'));
    const stored = await specs.put(ws, runId, { template: { files: {} }, env: {}, install: [], mcp: [], turns: [] } as unknown as Parameters<BlobRunSpecStore['put']>[2]);
    const deadline = new Date(Date.now() + 60_000).toISOString();
    for (const command of [{ type: 'RequestRun', runId, workspaceId: ws, deadline, specRef: stored.ref, specDigest: stored.digest }, { type: 'StartPhase', phase: 'seed' }] as const)
      await onRun(deps, ws, runId, command, { actor: 'alice', correlationId: 'c' });
    await new BlobTranscriptStore(blobContainerFor(location, 'transcripts')).append(ws, runId, 'redacted output\n');
    await new TableRunRequestLedger(TableClient.fromConnectionString(env.AzureWebJobsStorage, env.RUN_REQUEST_TABLE, { allowInsecureConnection: true }), systemClock)
      .claim(ws, 'request-1', { runId, requestedBy: 'alice' });
    const bearersTable = TableClient.fromConnectionString(env.AzureWebJobsStorage, env.GATEWAY_BEARER_TABLE, { allowInsecureConnection: true });
    await bearersTable.createTable();
    const bearers = new TableGatewayBearers(bearersTable);
    await bearers.mint({ workspaceId: ws, runId, containerId: 'c1', expiresAt: deadline });
    await bearers.revokeRun(ws, runId);
    const hub = new InstanceStore(env.AzureWebJobsStorage, taskHubNames(env.DURABLE_TASK_HUB));
    await hub.ensureTables();
    const deletionInstance = `delete-${ws}-1`;
    for (const [instanceId, input] of [[runId, { workspaceId: ws, runId }], [deletionInstance, { workspaceId: ws }]] as const) {
      const at = new Date().toISOString();
      await hub.createInstance({
        instanceId, name: 'orchestration', executionId: 'x1', status: 'Completed', input: JSON.stringify(input), createdTime: at, lastUpdatedTime: at,
        historyCount: 1, counters: { nextSequence: 0, actionCount: 0, retries: [] },
      });
      await hub.appendHistory(instanceId, 'x1', 0, [{ event: { EventType: 0, EventId: -1, Timestamp: at, Input: JSON.stringify(input) } }]);
    }
    const backup = await backupWorkspace(platform.logBackup(), ws);

    // Deletion, then purge once retention has ended.
    await requestWorkspaceDeletion(deps, caller, ws, 7);
    await softDeleteWorkspaceVault(deps, ws, 'c');
    const records = new TableWorkspaceRecords(TableClient.fromConnectionString(env.AzureWebJobsStorage, env.EVENT_LOG_TABLE, { allowInsecureConnection: true }));
    const refuse = async () => Promise.reject(new Error('deletion does not purge'));
    await removeLiveRecordsAndSeal({ ...deps, records, removeBlobs: blobRemover(location, WORKSPACE_BLOB_CONTAINERS), purgeOutside: refuse }, ws, 'c');
    const durable: DurableInstances = {
      purge: (instanceId) => hub.purge(instanceId),
      instanceIdsStartingWith: async (prefix) => (await hub.listInstances()).map((r) => r.instanceId).filter((id) => id.startsWith(prefix)),
    };
    const later: Clock = { now: () => new Date(Date.now() + 8 * 86_400_000), sleep: async () => undefined };
    const purgeDeps: WorkspaceLifecycleDependencies = {
      ...deps, clock: later, records,
      removeBlobs: blobRemover(location, [...WORKSPACE_BLOB_CONTAINERS, ...SEALED_BLOB_CONTAINERS]),
      purgeOutside: (id, runIds) => workspaceLeftovers(platform, durable).purge(id, runIds),
    };
    expect(await purgeWorkspaceIfDue(purgeDeps, ws)).toBe(true);

    // What remains anywhere in storage: only the archive, which audit retention keeps immutable.
    const hits = await findEverywhere({ workspace: ws, run: runId, secret: secretValue, secretBase64: Buffer.from(secretValue).toString('base64') });
    // The secret value is nowhere, not even in the archive (backups are encrypted; heads carry hashes only).
    expect(hits.filter((h) => h.startsWith('secret'))).toEqual([]);
    const archive = `blob ${env.BACKUP_CONTAINER}/`;
    expect(hits.filter((h) => !h.includes(` @ ${archive}`))).toEqual([]);
    const kept = new Set(hits.map((h) => h.slice(h.indexOf(archive) + archive.length).replace(/[0-9]{10}-[0-9]{10}/, 'N')));
    expect([...kept].sort()).toEqual([`${ws}/backups/N.bak`, `${ws}/backups/N.bak (content)`, `${ws}/heads/N.json`, `${ws}/heads/N.json (content)`]);
    // The backup key went with the purge: the old backup no longer opens.
    expect(await platform.backupKeys().existing(ws)).toBeUndefined();
    await expect(restoreWorkspace({ archive: platform.archive(), keys: platform.backupKeys() }, { table: TableClient.fromConnectionString(env.AzureWebJobsStorage, uniqueName('nope'), { allowInsecureConnection: true }) }, { workspaceId: ws, from: backup?.name ?? '' }))
      .rejects.toMatchObject({ message: expect.stringContaining('no backup key') });
  });
});

describe('the Durable client as purge uses it', () => {
  it('purges each instance by id and finds deletion orchestrations by id prefix', async () => {
    const purged: string[] = [];
    const durable = durableClientInstances({
      purgeInstanceHistory: async (id) => {
        purged.push(id);
        return { instancesDeleted: 1 };
      },
      getStatusAll: async () => [{ instanceId: 'delete-ws1-a' }, { instanceId: 'delete-ws10-b' }, { instanceId: 'run-1' }, {}],
    });
    expect(await durable.instanceIdsStartingWith('delete-ws1-')).toEqual(['delete-ws1-a']);
    await durable.purge('run-1');
    expect(purged).toEqual(['run-1']);
  });
});
