import type { Channel, RunStatus } from './runEvents';
import type { PhaseRecord, RunState } from './runState';

/** A lease as the status projection shows it: what the sweep expires. */
export interface RunLeaseView {
  readonly leaseId: string;
  readonly secretName: string;
  readonly channel: Channel;
  readonly expiresAt: string;
}

/**
 * The run status projection: what `GET .../runs/{runId}` shows besides its events, and what the sweep (leases,
 * deadline) and workspace deletion (unfinished runs) read.
 */
export interface RunStatusView {
  readonly runId: string;
  readonly status: RunStatus;
  readonly deadline: string;
  readonly phases: readonly PhaseRecord[];
  readonly failure?: string;
  readonly cancellation?: string;
  readonly tornDown: boolean;
  readonly egress: { readonly allowed: number; readonly refused: number };
  readonly activeLeases: readonly RunLeaseView[];
}

export function runStatus(state: RunState): RunStatusView {
  return {
    runId: state.runId,
    status: state.status,
    deadline: state.deadline,
    phases: state.phases.map((p) => ({ ...p })),
    ...(state.failure ? { failure: state.failure } : {}),
    ...(state.cancellation ? { cancellation: state.cancellation } : {}),
    tornDown: state.tornDown,
    egress: { ...state.egress },
    activeLeases: Object.entries(state.activeLeases).map(([leaseId, lease]) => ({
      leaseId,
      secretName: lease.secretName,
      channel: lease.channel,
      expiresAt: lease.expiresAt,
    })),
  };
}

const RUN_STATUSES: readonly RunStatus[] = ['Pending', 'Running', 'Completed', 'Failed', 'Cancelled'];

/**
 * A stored status row as its view, or undefined when it names no run status. The fields the sweep and deletion
 * decide on are checked; a row written before egress was counted shows none.
 */
export function runStatusFromRow(row: Readonly<Record<string, unknown>>): RunStatusView | undefined {
  const status = RUN_STATUSES.find((s) => s === row.status);
  if (status === undefined) return undefined;
  const leases = Array.isArray(row.activeLeases) ? (row.activeLeases as readonly Record<string, unknown>[]) : [];
  const egress = (row.egress ?? {}) as { allowed?: unknown; refused?: unknown };
  return {
    runId: String(row.runId),
    status,
    deadline: String(row.deadline),
    phases: Array.isArray(row.phases) ? (row.phases as readonly PhaseRecord[]) : [],
    ...(typeof row.failure === 'string' ? { failure: row.failure } : {}),
    ...(typeof row.cancellation === 'string' ? { cancellation: row.cancellation } : {}),
    tornDown: row.tornDown === true,
    egress: { allowed: Number(egress.allowed ?? 0), refused: Number(egress.refused ?? 0) },
    activeLeases: leases.map((l) => ({ leaseId: String(l.leaseId), secretName: String(l.secretName), channel: l.channel as Channel, expiresAt: String(l.expiresAt) })),
  };
}
