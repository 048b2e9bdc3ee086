/** A run that is not finished, as its status projection shows it (names and times only). */
export interface ActiveRun {
  readonly workspaceId: string;
  readonly runId: string;
  readonly status: string;
  /** ISO-8601. */
  readonly deadline: string;
  readonly leaseExpiries: readonly { readonly leaseId: string; readonly expiresAt: string }[];
}

/** Every unfinished run across workspaces: what the sweep walks. */
export interface ActiveRuns {
  list(): Promise<readonly ActiveRun[]>;
}
