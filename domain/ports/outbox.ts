/**
 * The outbox: every append writes one outbox row per event in the same transaction as the event
 * (docs/event-log.md); the dispatcher publishes them in order per workspace and then marks them sent.
 */
export interface OutboxEntry {
  readonly workspaceId: string;
  readonly sequence: number;
  readonly eventId: string;
  readonly streamId: string;
  readonly type: string;
  /** Concurrency token of the row as read; marking sent is guarded by it. */
  readonly etag: string;
}

/** Implemented by event stores that write outbox rows (the table store and the in-memory one). */
export interface OutboxStore {
  /** Unsent rows of one workspace, lowest sequence first. */
  listOutbox(workspaceId: string, options?: { limit?: number }): Promise<readonly OutboxEntry[]>;
  /**
   * Marks rows sent (removes them), each guarded by its token. A row already marked by another dispatcher is
   * not an error: publishing is at least once and consumers de-duplicate by event id.
   */
  markOutboxSent(workspaceId: string, entries: readonly OutboxEntry[]): Promise<void>;
}

export function isOutboxStore(value: unknown): value is OutboxStore {
  const candidate = value as Partial<OutboxStore> | undefined;
  return typeof candidate?.listOutbox === 'function' && typeof candidate.markOutboxSent === 'function';
}

/**
 * Which workspaces may have unsent outbox rows, so the dispatcher need not scan every partition. The store
 * calls `touch` before each append's transaction; a marker may outlive its rows (a failed append, a drained
 * outbox) and is removed by `settle` once idle, but a committed outbox row never lacks a marker.
 */
export interface OutboxPendingIndex {
  touch(workspaceId: string): Promise<void>;
  pending(): Promise<readonly string[]>;
  /** Removes the workspace's marker when it has been idle for the grace period and `isEmpty` says so. */
  settle(workspaceId: string, isEmpty: () => Promise<boolean>): Promise<boolean>;
}
