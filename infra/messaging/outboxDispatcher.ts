import type { RecordedEvent } from '../../domain/events';
import type { EventPublisher } from '../../domain/ports/eventPublisher';
import type { EventStore } from '../../domain/ports/eventStore';
import type { OutboxPendingIndex, OutboxStore } from '../../domain/ports/outbox';
import { describeUnexpected } from '../system/describeUnexpected';

export interface OutboxDispatcherOptions {
  readonly store: EventStore & OutboxStore;
  readonly index: OutboxPendingIndex;
  readonly publisher: EventPublisher;
  /** Outbox rows read, published and marked per round (default 100, one transaction's worth). */
  readonly batchSize?: number;
  readonly log?: { warn(text: string): void };
}

export interface DispatchReport {
  readonly workspaces: number;
  readonly published: number;
  readonly failed: readonly string[];
}

/**
 * Publishes outbox rows at least once, in sequence order per workspace, then marks them sent. Each round
 * reads the lowest unsent rows, reads their records from the log, hands them to the publisher in order and
 * only then marks them; a crash in between leaves them unsent, so the next round (in this process or another)
 * publishes them again and consumers de-duplicate by event id. Marks happen in order, so the unsent rows are
 * always a suffix of the log and nothing is published after a later event of its workspace was marked.
 * Within one process a workspace is dispatched by one round at a time; across processes rounds may overlap,
 * which only adds duplicates, each copy still in order.
 */
export class OutboxDispatcher {
  private readonly batchSize: number;
  private readonly running = new Map<string, Promise<number>>();
  private readonly again = new Set<string>();

  constructor(private readonly options: OutboxDispatcherOptions) {
    this.batchSize = Math.min(100, Math.max(1, options.batchSize ?? 100));
  }

  /** Every workspace the index names; a failing workspace does not hold up the others. */
  async dispatchAll(): Promise<DispatchReport> {
    const workspaces = await this.options.index.pending();
    let published = 0;
    const failed: string[] = [];
    for (const workspaceId of workspaces) {
      try {
        published += await this.dispatchWorkspace(workspaceId);
        await this.options.index.settle(workspaceId, async () => (await this.options.store.listOutbox(workspaceId, { limit: 1 })).length === 0);
      } catch (error) {
        failed.push(workspaceId);
        this.options.log?.warn(`outbox of workspace ${workspaceId} not dispatched: ${describeUnexpected(error)}`);
      }
    }
    return { workspaces: workspaces.length, published, failed };
  }

  /**
   * Drains one workspace's outbox. A call while a round for the workspace runs in this process waits for it
   * and then runs once more, so an append that landed during the round is not left behind.
   */
  dispatchWorkspace(workspaceId: string): Promise<number> {
    const current = this.running.get(workspaceId);
    if (current) {
      this.again.add(workspaceId);
      return current;
    }
    const round = (async () => {
      let total = 0;
      do {
        this.again.delete(workspaceId);
        total += await this.drain(workspaceId);
      } while (this.again.has(workspaceId));
      return total;
    })().finally(() => this.running.delete(workspaceId));
    this.running.set(workspaceId, round);
    return round;
  }

  /** Fire and forget after an append: failures are logged; the timer is the backstop. */
  nudge(workspaceId: string): void {
    this.dispatchWorkspace(workspaceId).catch((error: unknown) => this.options.log?.warn(`outbox nudge for ${workspaceId} failed: ${describeUnexpected(error)}`));
  }

  private async drain(workspaceId: string): Promise<number> {
    const { store, publisher } = this.options;
    let published = 0;
    for (;;) {
      const entries = await store.listOutbox(workspaceId, { limit: this.batchSize });
      const first = entries[0];
      const last = entries[entries.length - 1];
      if (!first || !last) return published;
      const records = await this.recordsFor(workspaceId, first.sequence, last.sequence, new Set(entries.map((e) => e.sequence)));
      await publisher.publish(records);
      await store.markOutboxSent(workspaceId, entries);
      published += records.length;
      if (entries.length < this.batchSize) return published;
    }
  }

  private async recordsFor(workspaceId: string, from: number, to: number, wanted: ReadonlySet<number>): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    let after = from - 1;
    while (after < to) {
      const page = await this.options.store.readLog(workspaceId, { after, limit: to - after });
      for (const record of page.records) if (wanted.has(record.sequence)) out.push(record);
      const next = page.records[page.records.length - 1]?.sequence;
      if (next === undefined) break;
      after = next;
    }
    if (out.length !== wanted.size) throw new Error(`Outbox of ${workspaceId} names events ${from}..${to} the log does not hold`);
    return out;
  }
}
