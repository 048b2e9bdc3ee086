import { type TableClient, type TableEntity, type TransactionAction, odata } from '@azure/data-tables';
import { tableCreatedOnce } from './tableOnce';
import type { DepositedFrame, HostSessionAddress, HostSessionChange, HostSessionHead, HostSessionStore } from '../../domain/ports/hostSessions';
import { MAX_TEXT_UNITS, fromParts, toParts } from './textParts';

/**
 * Host channel sessions in Table storage: one partition per host (`<workspace>:<host>`), so a session's head and
 * the frames deposited for its waiting instances change in one entity-group transaction, and hosts never contend.
 * Rows: `head`; `s:<session>:x:<key>` (an instance waits on key); `s:<session>:i:<key>:<seq>:<part>` (a frame).
 */
export class TableHostSessions implements HostSessionStore {
  private readonly ready: () => Promise<void>;

  /** `createTable`: create the table at the first use (the composition opens the channel without touching storage). */
  constructor(private readonly table: TableClient, options: { createTable?: boolean } = {}) {
    this.ready = options.createTable ? tableCreatedOnce(table) : () => Promise.resolve();
  }

  async open(head: Omit<HostSessionHead, 'etag'>): Promise<{ head: HostSessionHead; previous?: HostSessionHead }> {
    await this.ready();
    for (;;) {
      const previous = await this.head(head);
      const entity = { partitionKey: partitionOf(head), rowKey: HEAD, ...headProps(head) };
      try {
        const answer = previous ? await this.table.updateEntity(entity, 'Replace', { etag: previous.etag }) : await this.table.createEntity(entity);
        return { head: { ...head, etag: answer.etag ?? '' }, ...(previous ? { previous } : {}) };
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
  }

  async head(address: HostSessionAddress): Promise<HostSessionHead | undefined> {
    await this.ready();
    try {
      return headOf(await this.table.getEntity<TableEntity>(partitionOf(address), HEAD));
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async heads(): Promise<readonly HostSessionHead[]> {
    await this.ready();
    const heads: HostSessionHead[] = [];
    for await (const row of this.table.listEntities<TableEntity>({ queryOptions: { filter: odata`RowKey eq ${HEAD}` } })) heads.push(headOf(row));
    return heads;
  }

  async update(head: HostSessionHead, change: HostSessionChange, deposit?: DepositedFrame): Promise<HostSessionHead | undefined> {
    await this.ready();
    const entity = { partitionKey: partitionOf(head), rowKey: HEAD, ...changeProps(change) };
    try {
      if (!deposit) {
        const answer = await this.table.updateEntity(entity, 'Merge', { etag: head.etag });
        return { ...head, ...change, etag: answer.etag ?? '' };
      }
      const actions: TransactionAction[] = [['update', entity, 'Merge', { etag: head.etag }], ...depositRows(head, deposit).map((row): TransactionAction => ['upsert', row, 'Replace'])];
      const answer = await this.table.submitTransaction(actions);
      const etag = answer.subResponses.find((r) => r.rowKey === HEAD)?.etag ?? answer.subResponses[0]?.etag;
      // Without the new version the next change would conflict once and read the head again: still correct.
      return { ...head, ...change, etag: etag ?? '' };
    } catch (error) {
      if (isConflict(error)) return undefined;
      throw error;
    }
  }

  async expect(head: SessionOf, key: string, runId: string | undefined): Promise<void> {
    await this.ready();
    await this.table.upsertEntity({ partitionKey: partitionOf(head), rowKey: expectKey(head, key), runId: runId ?? '' }, 'Replace');
  }

  async expectation(head: SessionOf, key: string): Promise<{ runId?: string } | undefined> {
    await this.ready();
    try {
      const row = await this.table.getEntity<TableEntity<{ runId?: string }>>(partitionOf(head), expectKey(head, key));
      return row.runId ? { runId: row.runId } : {};
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async inbox(head: SessionOf, key: string): Promise<{ head: HostSessionHead | undefined; frames: readonly DepositedFrame[] }> {
    await this.ready();
    const from = `${inboxPrefix(head, key)}`;
    const to = `${from.slice(0, -1)};`;
    let current: HostSessionHead | undefined;
    const parts = new Map<number, { of: number; texts: Map<number, string> }>();
    const filter = odata`PartitionKey eq ${partitionOf(head)} and (RowKey eq ${HEAD} or (RowKey ge ${from} and RowKey lt ${to}))`;
    for await (const row of this.table.listEntities<TableEntity>({ queryOptions: { filter } })) {
      if (row.rowKey === HEAD) {
        current = headOf(row);
        continue;
      }
      if (row.key !== key || typeof row.seq !== 'number' || typeof row.part !== 'number' || typeof row.parts !== 'number') continue;
      const frame = parts.get(row.seq) ?? { of: row.parts, texts: new Map<number, string>() };
      frame.texts.set(row.part, fromParts('b', row as Record<string, unknown>));
      parts.set(row.seq, frame);
    }
    const frames: DepositedFrame[] = [];
    for (const [seq, frame] of [...parts].sort(([a], [b]) => a - b)) {
      // Written in one transaction with the head's change, so a frame is whole or absent; a partial read is skipped.
      if (frame.texts.size !== frame.of) continue;
      frames.push({ key, seq, body: [...frame.texts].sort(([a], [b]) => a - b).map(([, text]) => text).join('') });
    }
    return { head: current, frames };
  }

  async consume(head: SessionOf, key: string, seqs: readonly number[], finished: boolean): Promise<void> {
    await this.ready();
    const doomed: string[] = finished ? [expectKey(head, key)] : [];
    if (seqs.length > 0) {
      const wanted = new Set(seqs);
      const from = inboxPrefix(head, key);
      for await (const row of this.table.listEntities<TableEntity>({ queryOptions: { filter: odata`PartitionKey eq ${partitionOf(head)} and RowKey ge ${from} and RowKey lt ${`${from.slice(0, -1)};`}`, select: ['RowKey', 'seq'] } })) {
        if (typeof row.seq === 'number' && wanted.has(row.seq)) doomed.push(row.rowKey);
      }
    }
    await this.remove(partitionOf(head), doomed);
  }

  async clear(head: SessionOf): Promise<void> {
    await this.ready();
    const from = `s:${head.session}:`;
    const doomed: string[] = [];
    for await (const row of this.table.listEntities<TableEntity>({ queryOptions: { filter: odata`PartitionKey eq ${partitionOf(head)} and RowKey ge ${from} and RowKey lt ${`s:${head.session};`}`, select: ['RowKey'] } })) doomed.push(row.rowKey);
    await this.remove(partitionOf(head), doomed);
  }

  private async remove(partitionKey: string, rowKeys: readonly string[]): Promise<void> {
    // One at a time rather than in a batch: another instance may have removed one of them already (a 404 is fine).
    await Promise.all(rowKeys.map((rowKey) => this.table.deleteEntity(partitionKey, rowKey).catch((error: unknown) => {
      if (statusOf(error) !== 404) throw error;
    })));
  }
}

type SessionOf = Pick<HostSessionHead, 'workspaceId' | 'hostId' | 'session'>;

const HEAD = 'head';
/** A frame spans at most this many rows (Web PubSub caps a client message at 1 MB; a transaction carries 4 MiB). */
export const MAX_FRAME_ROWS = 6;
/** The largest body one transaction carries with room for the head (UTF-8 bytes on the wire). */
export const MAX_DEPOSIT_BYTES = 3 * 1024 * 1024;

/** A deposited frame too large to keep: the channel refuses it rather than lose part of it. */
export class DepositTooLargeError extends Error {
  constructor(bytes: number) {
    super(`an agent frame of ${bytes} bytes is larger than a session can keep (${MAX_DEPOSIT_BYTES})`);
    this.name = 'DepositTooLargeError';
  }
}

function partitionOf(address: HostSessionAddress): string {
  return `${address.workspaceId}:${address.hostId}`;
}

function expectKey(head: SessionOf, key: string): string {
  return `s:${head.session}:x:${key}`;
}

function inboxPrefix(head: SessionOf, key: string): string {
  return `s:${head.session}:i:${key}:`;
}

function depositRows(head: HostSessionHead, deposit: DepositedFrame): TableEntity[] {
  const bytes = Buffer.byteLength(deposit.body);
  if (bytes > MAX_DEPOSIT_BYTES || deposit.body.length > MAX_FRAME_ROWS * MAX_TEXT_UNITS) throw new DepositTooLargeError(bytes);
  const chunks: string[] = [];
  for (let start = 0; start < deposit.body.length || chunks.length === 0;) {
    let end = Math.min(deposit.body.length, start + MAX_TEXT_UNITS);
    const last = deposit.body.charCodeAt(end - 1);
    if (end < deposit.body.length && last >= 0xd800 && last <= 0xdbff) end--;
    chunks.push(deposit.body.slice(start, end));
    start = end;
  }
  const seq = String(deposit.seq).padStart(10, '0');
  return chunks.map((text, part) => ({
    partitionKey: partitionOf(head), rowKey: `${inboxPrefix(head, deposit.key)}${seq}:${String(part).padStart(3, '0')}`,
    key: deposit.key, seq: deposit.seq, part, parts: chunks.length, ...toParts('b', text),
  }));
}

function headProps(head: Omit<HostSessionHead, 'etag'>): Record<string, string | number> {
  return {
    workspaceId: head.workspaceId, hostId: head.hostId, session: head.session, connectionId: head.connectionId,
    ...changeProps({ nextInbound: head.nextInbound, nextOutbound: head.nextOutbound, lastSeen: head.lastSeen, closed: head.closed, sender: head.sender, senderUntil: head.senderUntil }),
    capabilities: head.capabilities ? JSON.stringify(head.capabilities) : '',
  };
}

function changeProps(change: HostSessionChange): Record<string, string | number> {
  const props: Record<string, string | number> = {};
  if (change.nextInbound !== undefined) props.nextInbound = change.nextInbound;
  if (change.nextOutbound !== undefined) props.nextOutbound = change.nextOutbound;
  if (change.capabilities !== undefined) props.capabilities = JSON.stringify(change.capabilities);
  if (change.lastSeen !== undefined) props.lastSeen = change.lastSeen;
  if (change.closed !== undefined) props.closed = change.closed;
  if (change.sender !== undefined) props.sender = change.sender;
  // Epoch milliseconds pass Int32: kept as text.
  if (change.senderUntil !== undefined) props.senderUntil = String(change.senderUntil);
  return props;
}

function headOf(row: TableEntity): HostSessionHead {
  const text = (name: string): string => (typeof row[name] === 'string' ? (row[name] as string) : '');
  const count = (name: string): number => (typeof row[name] === 'number' ? (row[name] as number) : 0);
  const capabilities = text('capabilities');
  return {
    workspaceId: text('workspaceId'), hostId: text('hostId'), session: text('session'), connectionId: text('connectionId'),
    nextInbound: count('nextInbound'), nextOutbound: count('nextOutbound'),
    ...(capabilities ? { capabilities: JSON.parse(capabilities) as HostSessionHead['capabilities'] } : {}),
    lastSeen: text('lastSeen'), closed: text('closed'), sender: text('sender'), senderUntil: Number(text('senderUntil') || '0'),
    etag: typeof row.etag === 'string' ? row.etag : '',
  };
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

/** A precondition failed (412), or the row appeared first (409): another instance wrote first. */
function isConflict(error: unknown): boolean {
  const status = statusOf(error);
  return status === 412 || status === 409;
}
