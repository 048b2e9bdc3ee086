import { TableClient } from '@azure/data-tables';
import { beforeAll, describe, expect, it } from 'vitest';
import type { HostSessionHead } from '../../../domain/ports/hostSessions';
import { DepositTooLargeError, MAX_DEPOSIT_BYTES, TableHostSessions } from '../../../infra/tables/tableHostSessions';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

const aHead = (over: Partial<Omit<HostSessionHead, 'etag'>> = {}): Omit<HostSessionHead, 'etag'> => ({
  workspaceId: 'ws-1', hostId: 'host-1', session: 'session-1', connectionId: 'conn-1', nextInbound: 1, nextOutbound: 2,
  lastSeen: '2026-12-04T00:00:00.000Z', closed: '', sender: '', senderUntil: 0, ...over,
});

describe('TableHostSessions (Azurite)', () => {
  let table: TableClient;
  let store: TableHostSessions;

  beforeAll(async () => {
    table = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('hostsessions'), { allowInsecureConnection: true });
    await table.createTable();
    store = new TableHostSessions(table);
  });

  const rowKeys = async (partitionKey: string): Promise<string[]> => {
    const keys: string[] = [];
    for await (const row of table.listEntities({ queryOptions: { filter: `PartitionKey eq '${partitionKey}'` } })) keys.push(row.rowKey ?? '');
    return keys;
  };

  it('a head changes only at the version read: of two changes from one read, exactly one lands', async () => {
    const { head, previous } = await store.open(aHead({ hostId: 'racing' }));
    expect(previous).toBeUndefined();
    const outcomes = await Promise.all([store.update(head, { nextInbound: 2 }), store.update(head, { nextInbound: 2 })]);
    expect(outcomes.filter((o) => o !== undefined)).toHaveLength(1);
    const winner = outcomes.find((o) => o !== undefined)!;
    expect(await store.update(head, { nextInbound: 3 })).toBeUndefined();
    // A deposit rides on the head's version too: at a stale version nothing is kept.
    expect(await store.update(head, { nextInbound: 3 }, { key: 'r:late', seq: 2, body: '{}' })).toBeUndefined();
    expect((await store.inbox(head, 'r:late')).frames).toEqual([]);
    expect(await store.update(winner, { nextInbound: 3, capabilities: { isolated: true }, sender: 'i-1', senderUntil: 1_764_806_400_000 })).toBeDefined();
    expect(await store.head(head)).toMatchObject({ nextInbound: 3, capabilities: { isolated: true }, sender: 'i-1', senderUntil: 1_764_806_400_000 });
  });

  it('a new session of a host replaces the old one and hands it back', async () => {
    await store.open(aHead({ hostId: 'replaced', session: 'old', connectionId: 'c-old' }));
    const { head, previous } = await store.open(aHead({ hostId: 'replaced', session: 'new', connectionId: 'c-new' }));
    expect(previous).toMatchObject({ session: 'old', connectionId: 'c-old' });
    expect(head).toMatchObject({ session: 'new' });
    expect((await store.heads()).filter((h) => h.hostId === 'replaced').map((h) => h.session)).toEqual(['new']);
  });

  it('a large frame is deposited across rows with the head in one write, read back whole and in order, then removed', async () => {
    const { head } = await store.open(aHead({ hostId: 'big' }));
    const large = JSON.stringify({ kind: 'exited', stdout: 'é€😀'.repeat(120_000) + 'x'.repeat(500_000) });
    const first = await store.update(head, { nextInbound: 2 }, { key: 'e:exec-1', seq: 1, body: '{"kind":"output"}' });
    const second = await store.update(first!, { nextInbound: 3 }, { key: 'e:exec-1', seq: 2, body: large });
    await store.update(second!, { nextInbound: 4 }, { key: 'e:exec-2', seq: 3, body: '{"kind":"other"}' });
    const read = await store.inbox(head, 'e:exec-1');
    expect(read.head?.nextInbound).toBe(4);
    expect(read.frames.map((f) => f.seq)).toEqual([1, 2]);
    expect(read.frames[1]!.body).toBe(large);
    await store.expect(head, 'e:exec-1', 'run-1');
    expect(await store.expectation(head, 'e:exec-1')).toEqual({ runId: 'run-1' });
    await store.consume(head, 'e:exec-1', [1, 2], true);
    expect(await store.expectation(head, 'e:exec-1')).toBeUndefined();
    expect((await store.inbox(head, 'e:exec-1')).frames).toEqual([]);
    expect((await store.inbox(head, 'e:exec-2')).frames).toHaveLength(1);
    await store.clear(head);
    expect(await rowKeys('ws-1:big')).toEqual(['head']);
  });

  it('a frame too large to keep whole is refused and changes nothing', async () => {
    const { head } = await store.open(aHead({ hostId: 'too-big' }));
    await expect(store.update(head, { nextInbound: 2 }, { key: 'r:1', seq: 1, body: 'y'.repeat(MAX_DEPOSIT_BYTES + 1) })).rejects.toBeInstanceOf(DepositTooLargeError);
    expect((await store.head(head))?.nextInbound).toBe(1);
    expect(await rowKeys('ws-1:too-big')).toEqual(['head']);
  });
});
