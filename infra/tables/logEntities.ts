import type { TableEntity, TableEntityResult } from '@azure/data-tables';
import type { ChainRow, HeadRow, IndexRow } from './chainVerifier';
import type { SealedRecord } from './logRecord';
import { parseRecord } from './logRecord';
import { HEAD_ROW_KEY, eventRowKey, outboxRowKey, projectionRowKey, sequenceOf, streamRowKey } from './rowKeys';
import { fromParts, toParts } from './textParts';
import type { RecordedEvent } from '../../domain/events';
import type { StreamPosition } from '../../domain/ports/eventStore';
import type { ProjectionSeal } from './projectionSeal';
import { AppendTooLargeError } from './storeErrors';

/**
 * The shapes of the rows in a workspace partition. The `record*` parts hold the canonical bytes the chain
 * covers; `streamId`, `type` and friends beside them are conveniences for people reading the table and are
 * never trusted: records are parsed from the stored bytes.
 */
export type Entity = TableEntity<Record<string, unknown>>;

/** Entity-group transactions allow 100 operations and a 4 MiB body; we keep a margin for the multipart framing. */
export const MAX_TRANSACTION_OPERATIONS = 100;
const MAX_TRANSACTION_BYTES = 4 * 1024 * 1024 - 64 * 1024;

export function assertBodyFits(entities: readonly Entity[]): void {
  const bytes = entities.reduce((sum, entity) => sum + Buffer.byteLength(JSON.stringify(entity)) + 512, 0);
  if (bytes > MAX_TRANSACTION_BYTES) throw new AppendTooLargeError('The append', bytes, MAX_TRANSACTION_BYTES);
}
type Row = TableEntityResult<Record<string, unknown>>;

/**
 * `blobRef` names the blob holding the stored bytes of a record too large for the entity; the hash still
 * covers those full bytes, so an edited blob fails `verify` like an edited row.
 */
function recordProps(sealed: SealedRecord, blobRef: string | undefined): Record<string, string | number> {
  const { record } = sealed;
  return {
    ...(blobRef === undefined ? toParts('record', sealed.stored) : { blobRef, recordUnits: sealed.stored.length }),
    sequence: record.sequence,
    streamId: record.streamId,
    streamVersion: record.streamVersion,
    type: record.type,
    prevHash: record.prevHash,
    hash: record.hash,
  };
}

export function eventEntity(sealed: SealedRecord, checkpoint?: string, blobRef?: string): Entity {
  const { record } = sealed;
  return {
    partitionKey: record.workspaceId,
    rowKey: eventRowKey(record.sequence),
    ...recordProps(sealed, blobRef),
    ...(checkpoint === undefined ? {} : { checkpoint }),
  };
}

/** A full copy of the record, so reading a stream is one range query instead of one read per event. */
export function streamIndexEntity(sealed: SealedRecord, blobRef?: string): Entity {
  const { record } = sealed;
  return { partitionKey: record.workspaceId, rowKey: streamRowKey(record.streamId, record.streamVersion), ...recordProps(sealed, blobRef) };
}

/** What the outbox dispatcher needs to find and publish the event; the event itself stays in its `e:` row. */
export function outboxEntity(record: RecordedEvent): Entity {
  return {
    partitionKey: record.workspaceId,
    rowKey: outboxRowKey(record.sequence),
    sequence: record.sequence,
    eventId: record.id,
    streamId: record.streamId,
    type: record.type,
  };
}

export function headEntity(workspaceId: string, head: HeadRow): Entity {
  return {
    partitionKey: workspaceId,
    rowKey: HEAD_ROW_KEY,
    sequence: head.sequence,
    hash: head.hash,
    ...(head.signature === undefined ? {} : { signature: head.signature }),
  };
}

/** A projection row; sealed (stream, version, MAC) when it is derived from a stream of the workspace. */
export function projectionEntity(
  workspaceId: string,
  key: string,
  value: object,
  sealing?: { readonly seal: ProjectionSeal; readonly from: StreamPosition },
): Entity {
  const text = JSON.stringify(value);
  const sealed = sealing
    ? { streamId: sealing.from.streamId, streamVersion: sealing.from.version, mac: sealing.seal.mac(workspaceId, key, sealing.from, text) }
    : {};
  return { partitionKey: workspaceId, rowKey: projectionRowKey(key), key, ...toParts('value', text), ...sealed };
}

/** The row's value and whether its MAC holds for this workspace and key (the caller checks freshness). */
export function openProjectionRow(
  row: Row,
  workspaceId: string,
  seal: ProjectionSeal,
): { key: string; value: Readonly<Record<string, unknown>>; derivedFrom?: StreamPosition } {
  const key = str(row, 'key');
  const text = fromParts('value', row);
  const value = JSON.parse(text) as Readonly<Record<string, unknown>>;
  const from = { streamId: str(row, 'streamId'), version: num(row, 'streamVersion') };
  const mac = str(row, 'mac');
  const macHolds = mac !== '' && Number.isSafeInteger(from.version) && from.version > 0 && seal.verify(workspaceId, key, from, text, mac);
  return macHolds ? { key, value, derivedFrom: from } : { key, value };
}

const str = (row: Row, name: string): string => {
  const value = row[name];
  return typeof value === 'string' ? value : '';
};
const num = (row: Row, name: string): number => {
  const value = row[name];
  return typeof value === 'number' ? value : Number.NaN;
};

export function blobRefOf(row: Row): string | undefined {
  const ref = row['blobRef'];
  return typeof ref === 'string' ? ref : undefined;
}

/** The stored bytes kept inline; blob-held records are fetched by the store. */
export function inlineText(row: Row): string {
  return fromParts('record', row);
}

export function toChainRow(row: Row, stored: string): ChainRow {
  const checkpoint = row['checkpoint'];
  return {
    sequence: sequenceOf(row.rowKey ?? ''),
    stored,
    prevHash: str(row, 'prevHash'),
    hash: str(row, 'hash'),
    checkpoint: typeof checkpoint === 'string' ? checkpoint : undefined,
  };
}

export function toIndexRow(row: Row, stored: string): IndexRow {
  return {
    streamId: str(row, 'streamId'),
    streamVersion: sequenceOf(row.rowKey ?? ''),
    sequence: num(row, 'sequence'),
    stored,
    prevHash: str(row, 'prevHash'),
    hash: str(row, 'hash'),
  };
}

export function toRecord(row: Row, stored: string): RecordedEvent {
  return parseRecord(stored, str(row, 'prevHash'), str(row, 'hash'));
}

export function toHeadRow(row: Row): HeadRow & { etag: string } {
  const signature = row['signature'];
  return {
    sequence: num(row, 'sequence'),
    hash: str(row, 'hash'),
    signature: typeof signature === 'string' ? signature : undefined,
    etag: row.etag,
  };
}

export function toProjectionValue(row: Row): Readonly<Record<string, unknown>> {
  return JSON.parse(fromParts('value', row)) as Readonly<Record<string, unknown>>;
}
