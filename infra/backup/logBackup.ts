import type { ProjectionSeal } from '../tables/projectionSeal';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { TableClient } from '@azure/data-tables';
import type { ContainerClient } from '@azure/storage-blob';
import { z } from 'zod';
import { DomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import type { HeadCheckpointer } from '../../domain/ports/eventStore';
import { rebuildProjections } from '../../domain/services/projections';
import type { PublicSigningJwk } from '../../domain/signingKeys';
import { PublicKeyCheckpointVerifier } from '../identity/headCheckpointer';
import { nodeHasher } from '../system/nodeHasher';
import { type ChainRow, type IndexRow, verifyChain } from '../tables/chainVerifier';
import { type LogSnapshot, TableLogTransfer } from '../tables/logTransfer';
import { TableEventStore } from '../tables/tableEventStore';
import { TableWorkspaceRecords } from '../tables/tableWorkspaceRecords';
import type { BlobLogArchive } from './blobLogArchive';
import type { TableBackupKeys } from './tableBackupKeys';

const FORMAT = 'disco-parrot/log-backup';
const aadOf = (workspaceId: string, sequence: number): Buffer => Buffer.from(`${FORMAT}/v1\n${workspaceId}\n${sequence}`);

export const BACKUP_REFUSED = 'BACKUP.REFUSED';
const refuse = (reason: string): DomainError => new DomainError(BACKUP_REFUSED, `The backup is refused: ${reason}`, 'precondition');

/** What a backup blob holds in clear: enough to name it and find its key, nothing of the log. */
const envelopeSchema = z.object({
  format: z.literal(`${FORMAT}+A256GCM`),
  version: z.literal(1),
  workspaceId: z.string().min(1),
  sequence: z.number().int().min(1),
  iv: z.string(),
  tag: z.string(),
  ciphertext: z.string(),
});

const contentSchema = z.object({
  format: z.literal(FORMAT),
  workspaceId: z.string(),
  createdAt: z.string(),
  head: z.object({ sequence: z.number().int(), hash: z.string(), signature: z.string().optional() }),
  records: z.array(z.object({ sequence: z.number().int(), stored: z.string(), prevHash: z.string(), hash: z.string(), checkpoint: z.string().optional() })),
  publicKeys: z.array(z.object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string(), kid: z.string(), alg: z.literal('EdDSA'), use: z.literal('sig') })),
});

export interface LogBackupDependencies {
  /** Reads logs out of the live event-log table. */
  readonly source: TableLogTransfer;
  readonly archive: BlobLogArchive;
  readonly keys: TableBackupKeys;
  /** Every public key the platform ever signed checkpoints with (the backup carries them). */
  readonly publicKeys: () => Promise<readonly PublicSigningJwk[]>;
  readonly clock: Clock;
}

/** Copies one workspace's log to the archive, encrypted under its backup key, and witnesses its head. */
export async function backupWorkspace(deps: LogBackupDependencies, workspaceId: string): Promise<{ name: string; sequence: number } | undefined> {
  const snapshot = await deps.source.export(workspaceId);
  if (!snapshot) return undefined;
  const content = {
    format: FORMAT,
    workspaceId,
    createdAt: deps.clock.now().toISOString(),
    head: snapshot.head,
    records: snapshot.records,
    publicKeys: await deps.publicKeys(),
  };
  const key = await deps.keys.keyFor(workspaceId);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(aadOf(workspaceId, snapshot.head.sequence));
  const ciphertext = Buffer.concat([cipher.update(gzipSync(JSON.stringify(content))), cipher.final()]);
  const envelope = {
    format: `${FORMAT}+A256GCM`, version: 1, workspaceId, sequence: snapshot.head.sequence,
    iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64'),
  };
  const name = await deps.archive.putBackup(workspaceId, snapshot.head.sequence, Buffer.from(JSON.stringify(envelope)));
  if (snapshot.head.signature !== undefined)
    await deps.archive.witness({ workspaceId, sequence: snapshot.head.sequence, hash: snapshot.head.hash, signature: snapshot.head.signature });
  return { name, sequence: snapshot.head.sequence };
}

/** The scheduled backup: every workspace whose head moved since its latest backup. */
export async function backupChangedLogs(deps: LogBackupDependencies): Promise<{ checked: number; backedUp: number }> {
  let checked = 0;
  let backedUp = 0;
  for await (const head of deps.source.heads()) {
    checked++;
    const latest = await deps.archive.latestBackup(head.workspaceId);
    if (latest && latest.sequence >= head.sequence) continue;
    if (await backupWorkspace(deps, head.workspaceId)) backedUp++;
  }
  return { checked, backedUp };
}

/**
 * The scheduled witness: every signed head not yet in the archive is written there. `witnessed` remembers what
 * this process wrote, so a quiet workspace costs one table row read per run and no blob listing.
 */
export async function witnessChangedHeads(
  deps: Pick<LogBackupDependencies, 'source' | 'archive'>,
  witnessed: Map<string, number> = new Map(),
): Promise<{ checked: number; witnessed: number }> {
  let checked = 0;
  let written = 0;
  for await (const head of deps.source.heads()) {
    checked++;
    if (head.signature === undefined) continue;
    const known = witnessed.get(head.workspaceId) ?? (await deps.archive.latest(head.workspaceId))?.sequence ?? 0;
    if (known < head.sequence) {
      await deps.archive.witness({ workspaceId: head.workspaceId, sequence: head.sequence, hash: head.hash, signature: head.signature });
      written++;
    }
    witnessed.set(head.workspaceId, Math.max(known, head.sequence));
  }
  return { checked, witnessed: written };
}

/** Opens a backup blob: the workspace's key must still exist, and the ciphertext must be this workspace's, unaltered. */
export async function openBackup(deps: Pick<LogBackupDependencies, 'archive' | 'keys'>, workspaceId: string, name: string): Promise<z.infer<typeof contentSchema>> {
  const bytes = await deps.archive.getBackup(name);
  if (!bytes) throw refuse(`there is no backup named ${name}`);
  let envelope: z.infer<typeof envelopeSchema>;
  try {
    envelope = envelopeSchema.parse(JSON.parse(Buffer.from(bytes).toString('utf8')));
  } catch {
    throw refuse(`${name} is not a log backup`);
  }
  if (envelope.workspaceId !== workspaceId) throw refuse(`${name} is a backup of another workspace`);
  const key = await deps.keys.existing(workspaceId);
  if (!key) throw refuse(`workspace ${workspaceId} has no backup key (it was purged, or never backed up): its backups cannot be read`);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(envelope.iv, 'base64')).setAAD(aadOf(workspaceId, envelope.sequence));
    decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
    plain = gunzipSync(Buffer.concat([decipher.update(Buffer.from(envelope.ciphertext, 'base64')), decipher.final()]));
  } catch {
    throw refuse(`${name} does not decrypt under the workspace's backup key (altered, or not made for it)`);
  }
  const content = contentSchema.safeParse(JSON.parse(plain.toString('utf8')));
  if (!content.success || content.data.workspaceId !== workspaceId || content.data.head.sequence !== envelope.sequence)
    throw refuse(`${name} does not hold the log it claims to`);
  return content.data;
}

function indexRowsOf(records: readonly ChainRow[]): IndexRow[] {
  return records.map((row) => {
    const body = JSON.parse(row.stored) as { streamId?: unknown; streamVersion?: unknown };
    return { streamId: String(body.streamId), streamVersion: Number(body.streamVersion), sequence: row.sequence, stored: row.stored, prevHash: row.prevHash, hash: row.hash };
  });
}

/** Every checkpoint must verify under the backup's keys and, when given, under the platform's own ring too. */
function checkpointerFor(publicKeys: readonly PublicSigningJwk[], platform: HeadCheckpointer | undefined): HeadCheckpointer {
  const carried = new PublicKeyCheckpointVerifier(publicKeys);
  return {
    sign: () => Promise.reject(new Error('A restore signs nothing')),
    verify: async (head, signature) => (await carried.verify(head, signature)) && (!platform || (await platform.verify(head, signature))),
  };
}

export interface RestoreTarget {
  readonly table: TableClient;
  /** Where records too large for one entity go (the event store's `largeRecords` container). */
  readonly largeRecords?: ContainerClient;
  /** The live platform's checkpointer, when its key ring is reachable: a backup must verify under it as well. */
  readonly platformCheckpointer?: HeadCheckpointer;
  /** The platform's projection MAC: rebuilt rows must verify for the app that reads them after the restore. */
  readonly projectionSeal?: ProjectionSeal;
}

/**
 * Rebuilds a workspace's log from a backup into a table where its partition is empty: the chain, the stream
 * index, every checkpoint and the signed head are verified before a row is written, and again from the table
 * afterwards; projections are rebuilt by replay. A backup that does not verify is refused and nothing is written.
 */
export async function restoreWorkspace(
  deps: Pick<LogBackupDependencies, 'archive' | 'keys'>,
  target: RestoreTarget,
  request: { workspaceId: string; from: string },
): Promise<{ name: string; records: number; projections: number; witnessed?: number }> {
  const { workspaceId } = request;
  const name = request.from === 'latest' ? (await deps.archive.latestBackup(workspaceId))?.name : request.from;
  if (!name) throw refuse(`workspace ${workspaceId} has no backup`);
  const content = await openBackup(deps, workspaceId, name);
  const checkpointer = checkpointerFor(content.publicKeys, target.platformCheckpointer);
  const snapshot: LogSnapshot = { workspaceId, head: content.head, records: content.records };
  const before = await verifyChain({ workspaceId, rows: snapshot.records, index: indexRowsOf(snapshot.records), head: snapshot.head, hasher: nodeHasher, checkpointer });
  if (!before.ok) throw refuse(`record ${before.brokenAt} does not verify: ${before.reason}`);
  if (snapshot.records.length === 0 || snapshot.head.signature === undefined) throw refuse('it holds no signed log');
  const transfer = new TableLogTransfer(target.table, target.largeRecords);
  if (!(await transfer.isEmpty(workspaceId))) throw refuse(`the target table already holds rows of workspace ${workspaceId}; restore writes only into an empty partition`);
  await transfer.import(snapshot);
  const store = new TableEventStore(target.table, {
    checkpointer,
    ...(target.largeRecords ? { largeRecords: target.largeRecords } : {}),
    ...(target.projectionSeal ? { projectionSeal: target.projectionSeal } : {}),
  });
  const after = await store.verify(workspaceId);
  if (!after.ok) throw refuse(`the restored log does not verify at ${after.brokenAt}: ${after.reason}`);
  const projections = await rebuildProjections(store, workspaceId);
  await new TableWorkspaceRecords(target.table, store.projectionSeal).writeProjections(workspaceId, projections);
  // A witness beyond the backup is the loss this restore could not undo; verify will keep naming it.
  const witnessed = (await deps.archive.latest(workspaceId))?.sequence;
  return { name, records: after.records, projections: projections.length, ...(witnessed !== undefined && witnessed > after.records ? { witnessed } : {}) };
}
