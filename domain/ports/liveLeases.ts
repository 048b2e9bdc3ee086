/** A lease held by a process (or a gateway operation) of this instance, and how to end what holds it. */
export interface LiveLease {
  readonly workspaceId: string;
  readonly runId: string;
  readonly leaseId: string;
  readonly secretName: string;
  readonly secretVersion: number;
  /** Stops the process (or aborts the operation) holding the lease; called at most once. */
  readonly end: () => Promise<unknown> | void;
}

/**
 * This instance's live leases (infra/runs/liveLeases.ts): a revocation ends the held ones of its version.
 * `revoked` says whether that is how the lease ended; `drop` says the holder ended on its own.
 */
export interface LiveLeaseRegistry {
  hold(lease: LiveLease): { readonly revoked: boolean; drop(): void };
}
