import { assertNever } from './errors';
import type { Channel, Phase, RunEvent, RunStatus } from './runEvents';

/** A run that has not reached an outcome yet: what deletion cancels and the sweep watches. */
export const isUnfinishedRun = (status: RunStatus): boolean => status === 'Pending' || status === 'Running';

export interface PhaseRecord {
  readonly phase: Phase;
  readonly turn?: number;
  readonly status: 'Running' | 'Completed' | 'Failed';
  readonly reason?: string;
}

export interface ActiveLease {
  readonly secretName: string;
  readonly secretVersion: number;
  readonly channel: Channel;
  readonly expiresAt: string;
}

export interface RunState {
  readonly exists: boolean;
  readonly runId: string;
  readonly workspaceId: string;
  readonly deadline: string;
  readonly specRef: string;
  /** Who asked for the run (the actor of `RunRequested`): whose uses every lease is checked against. */
  readonly requestedBy?: string;
  /** Empty for runs requested before digests were recorded: their spec can no longer be vouched for. */
  readonly specDigest: string;
  readonly status: RunStatus;
  readonly phases: readonly PhaseRecord[];
  /** The phase now running, if any. */
  readonly current?: PhaseRecord;
  readonly failure?: string;
  readonly cancellation?: string;
  readonly sandboxId?: string;
  /** The host agent the sandbox was placed on (`SandboxLaunched.hostId`); absent for other hosts and older runs. */
  readonly sandboxHostId?: string;
  readonly tornDown: boolean;
  readonly activeLeases: Readonly<Record<string, ActiveLease>>;
  /** Egress connections through the platform's proxy over the whole run. */
  readonly egress: { readonly allowed: number; readonly refused: number };
}

export function initialRunState(): RunState {
  return {
    exists: false,
    runId: '',
    workspaceId: '',
    deadline: '',
    specRef: '',
    specDigest: '',
    status: 'Pending',
    phases: [],
    tornDown: false,
    activeLeases: {},
    egress: { allowed: 0, refused: 0 },
  };
}

function replaceCurrent(state: RunState, record: PhaseRecord): readonly PhaseRecord[] {
  return state.phases.map((p, i) => (i === state.phases.length - 1 ? record : p));
}

export function evolveRun(state: RunState, event: RunEvent & { meta?: { actor: string } }): RunState {
  switch (event.type) {
    case 'RunRequested':
      return { ...initialRunState(), exists: true, ...event.data, ...(event.meta ? { requestedBy: event.meta.actor } : {}) };
    case 'PhaseStarted': {
      const record: PhaseRecord = { phase: event.data.phase, ...(event.data.turn ? { turn: event.data.turn } : {}), status: 'Running' };
      return { ...state, status: 'Running', phases: [...state.phases, record], current: record };
    }
    case 'PhaseCompleted': {
      if (!state.current) return state;
      const record: PhaseRecord = { ...state.current, status: 'Completed' };
      const { current: _done, ...rest } = state;
      return { ...rest, phases: replaceCurrent(state, record) };
    }
    case 'PhaseFailed': {
      if (!state.current) return state;
      const record: PhaseRecord = { ...state.current, status: 'Failed', reason: event.data.reason };
      const { current: _done, ...rest } = state;
      return { ...rest, phases: replaceCurrent(state, record), failure: state.failure ?? event.data.reason };
    }
    case 'SandboxLaunched': {
      const { sandboxHostId: _previous, ...rest } = state;
      return { ...rest, sandboxId: event.data.sandboxId, ...(event.data.hostId ? { sandboxHostId: event.data.hostId } : {}) };
    }
    case 'SandboxLaunchRefused':
      return { ...state, failure: state.failure ?? `launch refused: ${event.data.offendingKey}` };
    case 'EgressRecorded':
      return { ...state, egress: { allowed: state.egress.allowed + event.data.allowed, refused: state.egress.refused + event.data.refused } };
    case 'IsolationDegraded':
    case 'OperationRequested':
    case 'OperationRefused':
    case 'OperationCompleted':
    case 'IdentityTokenIssued':
    // IDE SSH sessions change nothing the run does (domain/runSsh.ts folds them).
    case 'SshTicketIssued':
    case 'SshSessionOpened':
    case 'SshSessionRefused':
    case 'SshSessionClosed':
      return state;
    case 'LeaseGranted': {
      const { leaseId, secretName, secretVersion, channel, expiresAt } = event.data;
      return { ...state, activeLeases: { ...state.activeLeases, [leaseId]: { secretName, secretVersion, channel, expiresAt } } };
    }
    case 'LeaseReleased':
    case 'LeaseExpired':
    case 'LeaseRevoked': {
      const { [event.data.leaseId]: _gone, ...rest } = state.activeLeases;
      return { ...state, activeLeases: rest };
    }
    case 'RunCancellationRequested':
      return { ...state, cancellation: event.data.reason };
    case 'SandboxTornDown':
      return { ...state, tornDown: true };
    case 'RunCompleted':
      return { ...state, status: 'Completed' };
    case 'RunFailed':
      return { ...state, status: 'Failed', failure: state.failure ?? event.data.reason };
    case 'RunCancelled':
      return { ...state, status: 'Cancelled' };
    default:
      return assertNever(event, 'run event');
  }
}

export function isFinished(state: RunState): boolean {
  return state.status === 'Completed' || state.status === 'Failed' || state.status === 'Cancelled';
}
