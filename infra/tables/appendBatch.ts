import { RestError } from '@azure/data-tables';
import type { AppendRequest, AppendResult, ProjectionWrite, StreamPosition } from '../../domain/ports/eventStore';
import { MAX_TRANSACTION_OPERATIONS } from './logEntities';
import type { Redact } from './logRecord';

/**
 * Group commit for one workspace's appends within one store instance (docs/performance.md, "One busy
 * workspace"). Every append of a workspace goes through its head row, so concurrent appends of one instance
 * only take turns losing the head's ETag race to each other. Instead, while one transaction of a workspace is
 * in flight, later appends wait, and the next transaction carries all of them that fit: one head update, the
 * projection rows merged, at most 100 operations. Each caller is settled on its own.
 */
export interface PendingAppend {
  readonly request: AppendRequest;
  readonly redact: Redact | undefined;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
}

/** Operations an append needs on its own (3 rows per event, its projections), not counting the shared head row. */
export function operationsOf(request: AppendRequest): number {
  return request.events.length * 3 + (request.projections?.length ?? 0);
}

/**
 * Takes from the front of the queue the appends that go together: in arrival order, at most one per stream (a
 * second append to a stream was decided on the first one's outcome, so it waits for the next transaction), and
 * no more than fit 100 operations with the head row. What is not taken stays queued, in order.
 */
export function takeBatch(queue: PendingAppend[]): PendingAppend[] {
  const batch: PendingAppend[] = [];
  const streams = new Set<string>();
  let operations = 1;
  for (let i = 0; i < queue.length; ) {
    const pending = queue[i]!;
    const cost = operationsOf(pending.request);
    if (operations + cost > MAX_TRANSACTION_OPERATIONS && batch.length > 0) break;
    if (streams.has(pending.request.streamId)) {
      i++;
      continue;
    }
    streams.add(pending.request.streamId);
    operations += cost;
    batch.push(pending);
    queue.splice(i, 1);
  }
  return batch;
}

/**
 * The last write of each projection key across the batch, with the position it is derived from: appends are
 * chained in batch order, so the later append's row is the one a sequential run would have left.
 */
export function mergedProjections(batch: readonly AppendRequest[]): Array<{ write: ProjectionWrite; appended: StreamPosition; owner: number }> {
  const byKey = new Map<string, { write: ProjectionWrite; appended: StreamPosition; owner: number }>();
  batch.forEach((request, owner) => {
    const appended = { streamId: request.streamId, version: request.expectedVersion + request.events.length };
    for (const write of request.projections ?? []) {
      byKey.delete(write.key);
      byKey.set(write.key, { write, appended, owner });
    }
  });
  return [...byKey.values()];
}

/**
 * The operation an entity-group transaction failed at: the service (and Azurite) starts the error message with
 * its index (`2:The specified entity already exists.`). Undefined when the message does not say.
 */
export function failedOperationIndex(error: unknown): number | undefined {
  if (!(error instanceof RestError)) return undefined;
  const match = /^(\d+):/.exec(error.message);
  return match ? Number(match[1]) : undefined;
}

/**
 * Runs one commit at a time per key; appends submitted meanwhile queue up, and each commit takes what it can
 * from the queue. `commit` must settle what it takes and must not throw.
 */
export class GroupCommit {
  private readonly queues = new Map<string, PendingAppend[]>();

  constructor(private readonly commit: (key: string, queue: PendingAppend[]) => Promise<void>) {}

  submit(key: string, pending: PendingAppend): void {
    const queue = this.queues.get(key);
    if (queue) {
      queue.push(pending);
      return;
    }
    const fresh = [pending];
    this.queues.set(key, fresh);
    void this.drain(key, fresh);
  }

  private async drain(key: string, queue: PendingAppend[]): Promise<void> {
    try {
      while (queue.length > 0) await this.commit(key, queue);
    } catch (error) {
      for (const pending of queue.splice(0)) pending.reject(error);
    } finally {
      this.queues.delete(key);
    }
  }
}
