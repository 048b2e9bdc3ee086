import { randomBytes } from 'node:crypto';
import { ProjectionSeal } from '../../../infra/tables/projectionSeal';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ServiceDependencies } from '../../../domain/services/dependencies';
import { createWorkspace, setMember } from '../../../domain/services/workspaces';
import { BlobLogArchive } from '../../../infra/backup/blobLogArchive';
import { BACKUP_REFUSED, type LogBackupDependencies, backupChangedLogs, backupWorkspace, restoreWorkspace, witnessChangedHeads } from '../../../infra/backup/logBackup';
import { TableBackupKeys } from '../../../infra/backup/tableBackupKeys';
import { randomUuidIds } from '../../../infra/system/randomUuidIds';
import { systemRandom } from '../../../infra/system/systemRandom';
import { TableLogTransfer } from '../../../infra/tables/logTransfer';
import { TableEventStore } from '../../../infra/tables/tableEventStore';
import { LocalFileKeyWrapper } from '../../../infra/vault/localFileKeyWrapper';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';
import { type Platform, aPlatform, tableClient } from '../identity/signingTestKit';

let p: Platform;
let deps: LogBackupDependencies;
let archive: BlobLogArchive;
let keys: TableBackupKeys;
const owner = { actor: 'alice', correlationId: 'c' };

/** A workspace with a few events, written through the real use cases over the signing store. */
async function aWorkspace(members = 2): Promise<string> {
  const services = { store: p.store, clock: p.clock, random: systemRandom, ids: randomUuidIds } as Partial<ServiceDependencies> as ServiceDependencies;
  const { id } = await createWorkspace(services, owner, 'Acme');
  for (let i = 0; i < members; i++) await setMember(services, owner, id, `user-${i}`, 'member');
  return id;
}

const allBlobs = async (): Promise<Map<string, Buffer>> => {
  const container = BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(archive.containerName());
  const out = new Map<string, Buffer>();
  for await (const blob of container.listBlobsFlat()) out.set(blob.name, await container.getBlockBlobClient(blob.name).downloadToBuffer());
  return out;
};

beforeAll(() => {
  p = aPlatform();
  const container = BlobServiceClient.fromConnectionString(azuriteConnectionString()).getContainerClient(uniqueName('archive'));
  archive = new BlobLogArchive(container);
  keys = new TableBackupKeys(tableClient(uniqueName('backupkeys')), LocalFileKeyWrapper.open(path.join(mkdtempSync(path.join(tmpdir(), 'dp-backup-')), 'master.key')));
  deps = {
    source: new TableLogTransfer(tableClient(p.eventTable)),
    archive,
    keys,
    publicKeys: async () => (await p.keys.ring()).map((k) => k.publicJwk),
    clock: p.clock,
  };
});

describe('log backups', () => {
  it('backs up each changed workspace, encrypted, and skips the unchanged ones', async () => {
    const ws = await aWorkspace();
    const first = await backupChangedLogs(deps);
    expect(first.backedUp).toBeGreaterThanOrEqual(1);
    const again = await backupChangedLogs(deps);
    expect(again.backedUp).toBe(0);
    const latest = await archive.latestBackup(ws);
    expect(latest?.sequence).toBe(3);
    // Nothing of the log is readable in the archive: no member, no event type, no record hash.
    const blob = (await allBlobs()).get(latest?.name ?? '');
    expect(blob).toBeDefined();
    const text = blob?.toString('utf8') ?? '';
    for (const needle of ['user-0', 'MemberAdded', 'WorkspaceCreated', 'Acme']) expect(text).not.toContain(needle);
    // The head is witnessed beside it.
    expect((await archive.latest(ws))?.sequence).toBe(3);

    await setMember({ store: p.store, clock: p.clock, random: systemRandom, ids: randomUuidIds } as Partial<ServiceDependencies> as ServiceDependencies, owner, ws, 'carol', 'owner');
    await backupChangedLogs(deps);
    expect((await archive.latestBackup(ws))?.sequence).toBe(4);
  });

  it('restores a backup into an empty table: same records, chain and signatures verify, projections rebuilt', async () => {
    const ws = await aWorkspace(3);
    const backup = await backupWorkspace(deps, ws);
    const table = tableClient(uniqueName('restored'));
    const projectionSeal = ProjectionSeal.fromKey(randomBytes(32));
    const restored = await restoreWorkspace({ archive, keys }, { table, platformCheckpointer: p.checkpointer, projectionSeal }, { workspaceId: ws, from: backup?.name ?? '' });
    expect(restored.records).toBe(4);
    const copy = new TableEventStore(table, { checkpointer: p.checkpointer, projectionSeal });
    expect(await copy.verify(ws)).toMatchObject({ ok: true, records: 4 });
    expect((await copy.readLog(ws)).records).toEqual((await p.store.readLog(ws)).records);
    expect(await copy.readProjection(ws, 'workspace')).toEqual(await p.store.readProjection(ws, 'workspace'));
    // The restored log takes new appends where it left off.
    await setMember({ store: copy, clock: p.clock, random: systemRandom, ids: randomUuidIds } as Partial<ServiceDependencies> as ServiceDependencies, owner, ws, 'dave', 'member');
    expect(await copy.verify(ws)).toMatchObject({ ok: true, records: 5 });
    // A partition that is not empty is never written into.
    await expect(restoreWorkspace({ archive, keys }, { table }, { workspaceId: ws, from: 'latest' })).rejects.toMatchObject({ code: BACKUP_REFUSED, message: expect.stringContaining('empty') });
  });

  it('refuses a backup that was altered, belongs to another workspace, or does not verify; nothing is written', async () => {
    const ws = await aWorkspace();
    const other = await aWorkspace();
    const backup = await backupWorkspace(deps, ws);
    const otherBackup = await backupWorkspace(deps, other);
    const table = tableClient(uniqueName('refused'));
    const restore = (from: string, workspaceId = ws) => restoreWorkspace({ archive, keys }, { table }, { workspaceId, from });

    // One bit of the ciphertext flipped, written as a new blob (the archive never overwrites one).
    const envelope = JSON.parse((await archive.getBackup(backup?.name ?? ''))!.toString()) as { ciphertext: string; sequence: number };
    const bytes = Buffer.from(envelope.ciphertext, 'base64');
    bytes[10] = (bytes[10] ?? 0) ^ 1;
    const altered = await archive.putBackup(ws, 99, Buffer.from(JSON.stringify({ ...envelope, ciphertext: bytes.toString('base64') })));
    await expect(restore(altered)).rejects.toMatchObject({ code: BACKUP_REFUSED, message: expect.stringContaining('does not decrypt') });
    // Another workspace's backup under this workspace's name.
    await expect(restore(otherBackup?.name ?? '')).rejects.toMatchObject({ message: expect.stringContaining('another workspace') });

    // A log edited in the table before it was backed up: the backup is consistent ciphertext, but its chain is not.
    const row = await tableClient(p.eventTable).getEntity<Record<string, unknown>>(other, 'e:0000000002');
    await tableClient(p.eventTable).updateEntity({ partitionKey: other, rowKey: 'e:0000000002', record0: String(row['record0']).replace('user-0', 'mallory') }, 'Merge');
    const forged = await archive.putBackup(other, 98, (await reencrypted(other))!);
    await expect(restore(forged, other)).rejects.toMatchObject({ code: BACKUP_REFUSED, message: expect.stringContaining('record 2 does not verify') });
    expect(await new TableLogTransfer(table).isEmpty(ws)).toBe(true);
    expect(await new TableLogTransfer(table).isEmpty(other)).toBe(true);
  });

  it('a workspace whose backup key was destroyed (purged) cannot be restored from its old backups', async () => {
    const ws = await aWorkspace();
    const backup = await backupWorkspace(deps, ws);
    await keys.destroy(ws);
    await expect(restoreWorkspace({ archive, keys }, { table: tableClient(uniqueName('shredded')) }, { workspaceId: ws, from: backup?.name ?? '' })).rejects.toMatchObject({
      code: BACKUP_REFUSED,
      message: expect.stringContaining('no backup key'),
    });
  });
});

/** A backup of the table as it is now (tampered), encrypted with the real key, as an insider with the key could. */
async function reencrypted(workspaceId: string): Promise<Buffer | undefined> {
  const captured: { bytes?: Buffer } = {};
  const capturing = Object.create(archive) as BlobLogArchive;
  capturing.putBackup = async (_ws: string, _seq: number, bytes: Uint8Array) => {
    captured.bytes = Buffer.from(bytes);
    return 'captured';
  };
  capturing.witness = async () => undefined;
  await backupWorkspace({ ...deps, archive: capturing }, workspaceId);
  return captured.bytes;
}

describe('the head witnessed outside the table', () => {
  it('verify names a log truncated back to an earlier, validly signed checkpoint', async () => {
    const ws = await aWorkspace(4);
    const witnessing = new TableEventStore(tableClient(p.eventTable), { checkpointer: p.checkpointer, witness: archive });
    expect((await witnessChangedHeads(deps)).witnessed).toBeGreaterThanOrEqual(1);
    expect(await witnessing.verify(ws)).toMatchObject({ ok: true, records: 5 });

    // Truncate to record 3: delete records 4 and 5 with their index rows, and point the head at record 3 with
    // the checkpoint signature that record 3 carries. Every remaining row and signature is genuine.
    const client = tableClient(p.eventTable);
    const third = await client.getEntity<Record<string, unknown>>(ws, 'e:0000000003');
    for (const n of [4, 5]) {
      const row = await client.getEntity<Record<string, unknown>>(ws, `e:000000000${n}`);
      await client.deleteEntity(ws, `e:000000000${n}`);
      const index = client.listEntities<Record<string, unknown>>({ queryOptions: { filter: `PartitionKey eq '${ws}' and RowKey ge 's:' and RowKey lt 't' and hash eq '${String(row['hash'])}'` } });
      for await (const r of index) await client.deleteEntity(ws, r.rowKey ?? '');
    }
    await client.updateEntity({ partitionKey: ws, rowKey: 'head', sequence: 3, hash: third['hash'], signature: third['checkpoint'] }, 'Replace');

    // From the table alone the truncated log is indistinguishable from one that ended at 3 …
    expect(await new TableEventStore(tableClient(p.eventTable), { checkpointer: p.checkpointer }).verify(ws)).toMatchObject({ ok: true, records: 3 });
    // … the witness names it.
    expect(await witnessing.verify(ws)).toMatchObject({
      ok: false,
      records: 3,
      brokenAt: 4,
      reason: expect.stringContaining('witnessed at 5 outside the table: truncated or rolled back'),
    });
  });

  it('a forged witness (not signed by the platform) is named, not trusted', async () => {
    const ws = await aWorkspace(1);
    const head = (await new TableLogTransfer(tableClient(p.eventTable)).export(ws))?.head;
    await archive.witness({ workspaceId: ws, sequence: 9, hash: head?.hash ?? '', signature: head?.signature ?? '' });
    const witnessing = new TableEventStore(tableClient(p.eventTable), { checkpointer: p.checkpointer, witness: archive });
    expect(await witnessing.verify(ws)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
  });
});
