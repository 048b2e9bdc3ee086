import type { TransactionAction } from '@azure/data-tables';
import type { AppendResult, HeadCheckpointer } from '../../domain/ports/eventStore';
import type { Hasher } from '../../domain/ports/hasher';
import type { Ids } from '../../domain/ports/ids';
import { mergedProjections } from './appendBatch';
import type { PendingAppend } from './appendBatch';
import { assertBodyFits, eventEntity, headEntity, outboxEntity, projectionEntity, streamIndexEntity, type toHeadRow } from './logEntities';
import { GENESIS_HASH, sealRecords } from './logRecord';
import type { ChainHead, SealedRecord } from './logRecord';
import type { ProjectionSeal } from './projectionSeal';
import type { RecordBlobs } from './recordBlobs';
import { projectionRowKey } from './rowKeys';
import { MAX_TEXT_UNITS } from './textParts';

/** The head row as a writer last saw it, with the ETag its update is guarded by. */
export type HeadState = ReturnType<typeof toHeadRow>;

/** One batch's transaction, or why it cannot be sent as it is. */
export type BuiltTransaction =
  | {
      readonly kind: 'built';
      readonly actions: TransactionAction[];
      /** Each append's outcome if the transaction commits, in batch order. */
      readonly results: AppendResult[];
      /** The append each stream-index operation belongs to, by operation index; the other operations are shared. */
      readonly owners: ReadonlyArray<number | undefined>;
      readonly records: number;
      readonly head: { sequence: number; hash: string; signature: string | undefined };
    }
  | { readonly kind: 'refused'; readonly index: number; readonly error: unknown }
  | { readonly kind: 'tooLarge' };

/** What building a transaction needs from the store. */
export interface TransactionParts {
  readonly ids: Ids;
  readonly hasher: Hasher;
  /** Where records too large for one entity go; absent, such records are refused. */
  readonly blobs: RecordBlobs | undefined;
  readonly checkpointer: HeadCheckpointer | undefined;
  readonly projectionSeal: ProjectionSeal;
  /** Reads the projection row now: a delete inside a transaction fails when the row is absent. */
  readonly projectionExists: (workspaceId: string, key: string) => Promise<boolean>;
}

/**
 * The rows of one entity-group transaction for a batch of appends to one workspace, chained in batch order
 * onto `head`: stream-index rows first (so the service's failed-operation index names the append whose
 * stream moved), then the events, the head (guarded by its ETag, or created), the merged projections and the
 * outbox rows. An append whose own rows cannot be built is refused alone; a batch over the 4 MiB body is
 * `tooLarge` (a single append over it is refused).
 */
export async function buildTransaction(
  parts: TransactionParts,
  workspaceId: string,
  live: readonly PendingAppend[],
  head: HeadState | undefined,
): Promise<BuiltTransaction> {
  let chain: ChainHead = head ?? { sequence: 0, hash: GENESIS_HASH };
  const sealedPer: SealedRecord[][] = [];
  const streamRows: TransactionAction[] = [];
  const eventRows: Array<{ sealed: SealedRecord; blobRef: string | undefined }> = [];
  const owners: Array<number | undefined> = [];
  const { blobs } = parts;
  for (const [index, { request, redact }] of live.entries()) {
    try {
      const sealed = sealRecords({ ...request, head: chain, ids: parts.ids, hasher: parts.hasher, redact });
      const blobRefs = await Promise.all(
        sealed.map((s) => (blobs && s.stored.length > MAX_TEXT_UNITS ? blobs.put(workspaceId, s.record.hash, s.stored) : undefined)),
      );
      // Stream rows first: when a stream moved, that is the conflict the service reports, and it names the append.
      sealed.forEach((s, i) => {
        streamRows.push(['create', streamIndexEntity(s, blobRefs[i])]);
        owners.push(index);
      });
      sealed.forEach((s, i) => eventRows.push({ sealed: s, blobRef: blobRefs[i] }));
      sealedPer.push(sealed);
      chain = sealed[sealed.length - 1]!.record;
    } catch (error) {
      return { kind: 'refused', index, error };
    }
  }
  const last = eventRows[eventRows.length - 1]!.sealed.record;
  const signature = await parts.checkpointer?.sign({ workspaceId, sequence: last.sequence, hash: last.hash });
  const nextHead = { sequence: last.sequence, hash: last.hash, signature };
  const actions: TransactionAction[] = [
    ...streamRows,
    ...eventRows.map(({ sealed, blobRef }): TransactionAction => ['create', eventEntity(sealed, sealed.record === last ? signature : undefined, blobRef)]),
    head ? ['update', headEntity(workspaceId, nextHead), 'Replace', { etag: head.etag }] : ['create', headEntity(workspaceId, nextHead)],
    ...(await projectionActions(parts, workspaceId, mergedProjections(live.map((p) => p.request)))),
    ...eventRows.map(({ sealed }): TransactionAction => ['create', outboxEntity(sealed.record)]),
  ];
  try {
    assertBodyFits(actions.map((a) => a[1]));
  } catch (error) {
    if (live.length > 1) return { kind: 'tooLarge' };
    return { kind: 'refused', index: 0, error };
  }
  const results = live.map(({ request }, i): AppendResult => ({ records: sealedPer[i]!.map((s) => s.record), version: request.expectedVersion + request.events.length }));
  return { kind: 'built', actions, results, owners, records: eventRows.length, head: nextHead };
}

/** A delete inside a transaction fails when the row is absent, so only rows seen to exist are deleted. */
async function projectionActions(
  parts: TransactionParts,
  workspaceId: string,
  writes: ReturnType<typeof mergedProjections>,
): Promise<TransactionAction[]> {
  const actions: TransactionAction[] = [];
  for (const { write, appended } of writes) {
    if (write.kind === 'upsert')
      actions.push(['upsert', projectionEntity(workspaceId, write.key, write.value, { seal: parts.projectionSeal, from: write.derivedFrom ?? appended }), 'Replace']);
    else if (await parts.projectionExists(workspaceId, write.key))
      actions.push(['delete', { partitionKey: workspaceId, rowKey: projectionRowKey(write.key) }]);
  }
  return actions;
}
