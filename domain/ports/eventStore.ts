import type { DomainEvent, EventEnvelope, RecordedEvent } from '../events';

/** Live, rebuildable views written in the same transaction as the events they derive from. */
export type ProjectionWrite =
  | {
      readonly kind: 'upsert';
      readonly key: string;
      /** A read model's view (`RunStatusView`, ...), stored as JSON; read back as a plain record. */
      readonly value: object;
      /**
       * The stream and version the row is derived from, when it is not the append's own stream after the
       * append (a rebuild, or a repaired row recorded beside `ProjectionMismatchDetected`).
       */
      readonly derivedFrom?: StreamPosition;
    }
  | { readonly kind: 'delete'; readonly key: string };

export interface AppendRequest {
  readonly workspaceId: string;
  readonly streamId: string;
  /** The stream's version the caller decided on; 0 means the stream must not exist yet. */
  readonly expectedVersion: number;
  readonly events: readonly EventEnvelope[];
  readonly projections?: readonly ProjectionWrite[];
}

export interface AppendResult {
  readonly records: readonly RecordedEvent[];
  /** The stream's version after the append. */
  readonly version: number;
}

export interface StreamRead<E extends DomainEvent = DomainEvent> {
  readonly version: number;
  readonly events: readonly RecordedEvent<E>[];
}

export interface LogPage {
  readonly records: readonly RecordedEvent[];
  /** Pass as `after` to read the next page; absent at the end of the log. */
  readonly next?: number;
}

export type VerifyResult =
  | { readonly ok: true; readonly records: number; readonly headSequence: number }
  | {
      readonly ok: false;
      readonly records: number;
      /** Sequence number of the first record that does not verify. */
      readonly brokenAt: number;
      readonly reason: string;
    };

export interface ProjectionRow {
  readonly key: string;
  readonly value: Readonly<Record<string, unknown>>;
}

export interface StreamPosition {
  readonly streamId: string;
  readonly version: number;
}

/**
 * A projection row as the store found it, with what it could prove: `verified` when the row's MAC (a platform
 * key no table holds in the clear) covers workspace, key, stream, version and content, and its stream has no
 * later version; `stale` when the MAC holds but the stream moved on (an older valid row put back, or a stream
 * whose appends do not rewrite this row); `forged` when the MAC is missing or wrong.
 */
export interface CheckedProjection extends ProjectionRow {
  readonly check: 'verified' | 'stale' | 'forged';
  /** The position the MAC vouches for (absent when forged). */
  readonly derivedFrom?: StreamPosition;
}

/**
 * The workspace-partitioned, hash-chained event log (DESIGN.md §3).
 * Every append is atomic: events, stream index, head, projections and outbox rows commit together or not
 * at all. `append` throws `VersionConflictError` when the stream moved, `TransactionTooLargeError` when the
 * append cannot fit one transaction. Writers to other streams of the same workspace never cause a
 * `VersionConflictError` on this one; the store absorbs head contention itself.
 */
export interface EventStore {
  append(request: AppendRequest): Promise<AppendResult>;
  readStream<E extends DomainEvent = DomainEvent>(workspaceId: string, streamId: string): Promise<StreamRead<E>>;
  /** The workspace log, oldest first, records with sequence > after. */
  readLog(workspaceId: string, options?: { after?: number; limit?: number }): Promise<LogPage>;
  readProjection(workspaceId: string, key: string): Promise<Readonly<Record<string, unknown>> | undefined>;
  listProjections(workspaceId: string, keyPrefix: string): Promise<readonly ProjectionRow[]>;
  /** The row with its MAC and freshness checked; decisions read projections only through this. */
  readCheckedProjection(workspaceId: string, key: string): Promise<CheckedProjection | undefined>;
  listCheckedProjections(workspaceId: string, keyPrefix: string): Promise<readonly CheckedProjection[]>;
  /** Walks the chain (and signed checkpoints, once configured) and names the first broken record. */
  verify(workspaceId: string): Promise<VerifyResult>;
}

/**
 * Hook for signed checkpoints of the log head (the signing-key work plugs in here). For each append the store
 * calls `sign` with the head that append will produce, before submitting it (signing is async), and stores the
 * signature in the same transaction; `verify` checks it.
 */
export interface HeadCheckpointer {
  sign(head: { workspaceId: string; sequence: number; hash: string }): Promise<string>;
  verify(head: { workspaceId: string; sequence: number; hash: string }, signature: string): Promise<boolean>;
}

/** A signed log head as written outside the table (the backup archive); `verify` compares the table with it. */
export interface WitnessedHead {
  readonly workspaceId: string;
  readonly sequence: number;
  readonly hash: string;
  /** The checkpoint signature of this head (the `HeadCheckpointer`'s). */
  readonly signature: string;
}

/**
 * Where signed heads are witnessed outside the table, so a log truncated or rolled back to an earlier valid
 * checkpoint, which the table alone cannot reveal, is named by `verify` (transparency logs publish heads alike).
 */
export interface HeadWitness {
  /** The highest head witnessed for the workspace, if any. */
  latest(workspaceId: string): Promise<WitnessedHead | undefined>;
}
