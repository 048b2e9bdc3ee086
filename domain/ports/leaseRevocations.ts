/**
 * Tells this instance's live leases that a secret was revoked, so their processes stop now rather than at the
 * next check. Only a hint: each instance also re-checks its live leases against the secrets' logs on a timer
 * (infra/runs/liveLeases.ts), so a hint lost, or sent to an instance that does not hold the process, delays
 * the stop by at most that period and never lets the old value be used after it.
 */
export interface LeaseRevocationNotice {
  secretRevoked(workspaceId: string, secretName: string): void;
}
