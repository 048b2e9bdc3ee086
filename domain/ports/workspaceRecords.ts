import type { ProjectionWrite } from './eventStore';

/**
 * Maintenance of a workspace's live records beside its log: projections are derived data, so deletion
 * removes them and recovery rebuilds them by replaying the log; purge removes the partition for good.
 */
export interface WorkspaceRecords {
  /** Removes every projection row of the workspace; returns how many. Idempotent. */
  deleteProjections(workspaceId: string): Promise<number>;
  /** Writes rebuilt projection rows (upserts), in as many transactions as needed. */
  writeProjections(workspaceId: string, writes: readonly ProjectionWrite[]): Promise<void>;
  /** Removes every row of the workspace's partition (log, streams, head, outbox, projections); returns how many. */
  purgePartition(workspaceId: string): Promise<number>;
}
