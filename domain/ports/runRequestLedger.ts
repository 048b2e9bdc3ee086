/**
 * Idempotency of queued run requests: one record per (workspace, request id), created once. It binds the
 * request id to the run id chosen by the first delivery, so every later delivery asks for that same run id
 * and the run stream's first-version insert turns a second start into a conflict instead of a second run.
 */
export interface RunRequestClaim {
  readonly runId: string;
  readonly requestedBy: string;
  /** True when this call created the record; false when an earlier delivery did. */
  readonly fresh: boolean;
}

export interface RunRequestLedger {
  /** Creates the record with `proposal` unless one exists; returns whichever record is stored. */
  claim(workspaceId: string, requestId: string, proposal: { runId: string; requestedBy: string }): Promise<RunRequestClaim>;
}
