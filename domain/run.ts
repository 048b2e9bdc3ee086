import { DomainError, assertNever } from './errors';
import type { DomainEvent } from './events';

export const PHASES = ['seed', 'install', 'mcp', 'turn', 'teardown'] as const;
export type Phase = (typeof PHASES)[number];

export type Channel =
  | 'refused'
  | 'process-env'
  | 'temp-file'
  | 'stdin'
  | 'git-credential-helper'
  | 'package-manager-config'
  /** The gateway's http operation: the platform process puts the credential in one request's header; it never enters the sandbox. */
  | 'gateway-header';

/**
 * At most this many egress refusals of one step become `OperationRefused` events (distinct destinations first);
 * the rest are counted in `EgressRecorded`. One append per step, whatever the agent tries.
 */
export const MAX_EGRESS_REFUSALS_RECORDED_PER_STEP = 20;

export type RunOutcome = 'Completed' | 'Failed' | 'Cancelled';
/** What the API shows. */
export type RunStatus = 'Pending' | 'Running' | RunOutcome;

/** A run that has not reached an outcome yet: what deletion cancels and the sweep watches. */
export const isUnfinishedRun = (status: RunStatus): boolean => status === 'Pending' || status === 'Running';

export type RunEvent =
  /** `specDigest`: SHA-256 of the stored spec's bytes; every read of the spec is checked against it. */
  | DomainEvent<'RunRequested', { runId: string; workspaceId: string; deadline: string; specRef: string; specDigest: string }>
  | DomainEvent<'PhaseStarted', { phase: Phase; turn?: number }>
  | DomainEvent<'PhaseCompleted', { phase: Phase; turn?: number }>
  | DomainEvent<'PhaseFailed', { phase: Phase; turn?: number; reason: string }>
  | DomainEvent<'SandboxLaunched', { sandboxId: string; isolated: boolean }>
  | DomainEvent<'SandboxLaunchRefused', { offendingKey: string; reason: string }>
  | DomainEvent<'IsolationDegraded', { reason: string }>
  | DomainEvent<
      'LeaseGranted',
      { leaseId: string; secretName: string; secretVersion: number; operation: string; channel: Channel; expiresAt: string }
    >
  | DomainEvent<'LeaseReleased', { leaseId: string }>
  | DomainEvent<'LeaseExpired', { leaseId: string }>
  | DomainEvent<'OperationRequested', { operationId: string; kind: string; target: string }>
  | DomainEvent<'OperationRefused', { operationId: string; kind: string; target: string; reason: string }>
  | DomainEvent<'OperationCompleted', { operationId: string; exitCode: number }>
  /** What the sandbox's egress proxy decided during one step (`refusalsNotRecorded`: refused beyond the events). */
  | DomainEvent<'EgressRecorded', { phase: Phase; turn?: number; allowed: number; refused: number; refusalsNotRecorded: number }>
  /** The gateway handed the agent a workload identity token (docs/identity.md). Its claims, never the token. */
  | DomainEvent<'IdentityTokenIssued', { identity: string; subject: string; audience: string; jti: string; kid: string; expiresAt: string }>
  | DomainEvent<'RunCancellationRequested', { reason: string }>
  | DomainEvent<'SandboxTornDown', { sandboxId: string }>
  | DomainEvent<'RunCompleted', Record<string, never>>
  | DomainEvent<'RunFailed', { reason: string }>
  | DomainEvent<'RunCancelled', { reason: string }>;

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
  readonly tornDown: boolean;
  readonly activeLeases: Readonly<Record<string, ActiveLease>>;
  /** Egress connections through the platform's proxy over the whole run. */
  readonly egress: { readonly allowed: number; readonly refused: number };
}

export type RunCommand =
  | { type: 'RequestRun'; runId: string; workspaceId: string; deadline: string; specRef: string; specDigest: string }
  | { type: 'StartPhase'; phase: Phase; turn?: number }
  | { type: 'CompletePhase'; phase: Phase; turn?: number }
  | { type: 'FailPhase'; phase: Phase; turn?: number; reason: string }
  | { type: 'RecordSandboxLaunched'; sandboxId: string; isolated: boolean; degradedReason?: string }
  | { type: 'RecordLaunchRefused'; offendingKey: string; reason: string }
  /** The guard refused a run at the door: recorded on the minted run id's stream, which stays without a run. */
  | { type: 'RefuseRunRequest'; offendingKey: string; reason: string }
  | { type: 'GrantLease'; leaseId: string; secretName: string; secretVersion: number; operation: string; channel: Channel; expiresAt: string }
  | { type: 'ReleaseLease'; leaseId: string }
  | { type: 'ExpireLeases'; now: string; all?: boolean }
  | { type: 'RecordOperationRequested'; operationId: string; kind: string; target: string }
  | { type: 'RecordOperationRefused'; operationId: string; kind: string; target: string; reason: string }
  | { type: 'RecordOperationCompleted'; operationId: string; exitCode: number }
  | {
      type: 'RecordEgress';
      phase: Phase;
      turn?: number;
      allowed: number;
      refused: number;
      refusals: readonly { readonly target: string; readonly reason: string }[];
    }
  | { type: 'RecordIdentityTokenIssued'; identity: string; subject: string; audience: string; jti: string; kid: string; expiresAt: string }
  | { type: 'CancelRun'; reason: string }
  | { type: 'RecordSandboxTornDown'; sandboxId: string }
  | { type: 'FinishRun' };

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
    case 'SandboxLaunched':
      return { ...state, sandboxId: event.data.sandboxId };
    case 'SandboxLaunchRefused':
      return { ...state, failure: state.failure ?? `launch refused: ${event.data.offendingKey}` };
    case 'EgressRecorded':
      return { ...state, egress: { allowed: state.egress.allowed + event.data.allowed, refused: state.egress.refused + event.data.refused } };
    case 'IsolationDegraded':
    case 'OperationRequested':
    case 'OperationRefused':
    case 'OperationCompleted':
    case 'IdentityTokenIssued':
      return state;
    case 'LeaseGranted': {
      const { leaseId, secretName, secretVersion, channel, expiresAt } = event.data;
      return { ...state, activeLeases: { ...state.activeLeases, [leaseId]: { secretName, secretVersion, channel, expiresAt } } };
    }
    case 'LeaseReleased':
    case 'LeaseExpired': {
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

function lastPhase(state: RunState): PhaseRecord | undefined {
  return state.phases[state.phases.length - 1];
}

function teardownStarted(state: RunState): boolean {
  return state.phases.some((p) => p.phase === 'teardown');
}

function requireExisting(state: RunState): void {
  if (!state.exists) throw new DomainError('RUN.NOT_FOUND', 'Run not found', 'not_found');
}

function requireOpen(state: RunState): void {
  requireExisting(state);
  if (isFinished(state)) throw new DomainError('RUN.ALREADY_FINISHED', 'Run has already finished', 'conflict');
}

/** Which phase may start next: seed → install → mcp → turn (1..n) → teardown; teardown after anything. */
function assertMayStart(state: RunState, phase: Phase, turn: number | undefined): void {
  if (state.current)
    throw new DomainError('RUN.PHASE_IN_PROGRESS', `Phase ${state.current.phase} is still running`, 'conflict');
  if (phase === 'teardown') {
    if (teardownStarted(state)) throw new DomainError('RUN.ALREADY_TORN_DOWN', 'Teardown has already started', 'conflict');
    return;
  }
  if (state.failure !== undefined || state.cancellation !== undefined)
    throw new DomainError('RUN.TEARDOWN_ONLY', 'After a failure or cancellation only teardown may start', 'conflict');
  if (teardownStarted(state)) throw new DomainError('RUN.ALREADY_TORN_DOWN', 'Teardown has already started', 'conflict');
  const last = lastPhase(state);
  const expected: Record<Phase, ReadonlyArray<Phase | undefined>> = {
    seed: [undefined],
    install: ['seed'],
    mcp: ['install'],
    turn: ['mcp', 'turn'],
    teardown: [],
  };
  if (!expected[phase].includes(last?.phase))
    throw new DomainError('RUN.PHASE_OUT_OF_ORDER', `Phase ${phase} cannot follow ${last?.phase ?? 'nothing'}`, 'conflict');
  if (phase === 'turn') {
    const wanted = last?.phase === 'turn' ? (last.turn ?? 1) + 1 : 1;
    if (turn !== undefined && turn !== wanted)
      throw new DomainError('RUN.PHASE_OUT_OF_ORDER', `Turn ${turn} cannot follow; expected turn ${wanted}`, 'conflict');
  }
}

function assertCurrent(state: RunState, phase: Phase): void {
  if (!state.current || state.current.phase !== phase)
    throw new DomainError('RUN.PHASE_NOT_RUNNING', `Phase ${phase} is not running`, 'conflict');
}

export function decideRun(command: RunCommand, state: RunState): RunEvent[] {
  switch (command.type) {
    case 'RequestRun':
      if (state.exists) throw new DomainError('RUN.ALREADY_EXISTS', 'Run already exists', 'conflict');
      return [
        {
          type: 'RunRequested',
          data: {
            runId: command.runId, workspaceId: command.workspaceId, deadline: command.deadline, specRef: command.specRef, specDigest: command.specDigest,
          },
        },
      ];
    case 'StartPhase': {
      requireOpen(state);
      assertMayStart(state, command.phase, command.turn);
      const last = lastPhase(state);
      const turn = command.phase === 'turn' ? (last?.phase === 'turn' ? (last.turn ?? 1) + 1 : 1) : undefined;
      return [{ type: 'PhaseStarted', data: { phase: command.phase, ...(turn ? { turn } : {}) } }];
    }
    case 'CompletePhase':
      requireOpen(state);
      assertCurrent(state, command.phase);
      return [{ type: 'PhaseCompleted', data: { phase: command.phase, ...(state.current?.turn ? { turn: state.current.turn } : {}) } }];
    case 'FailPhase':
      requireOpen(state);
      assertCurrent(state, command.phase);
      return [
        {
          type: 'PhaseFailed',
          data: { phase: command.phase, ...(state.current?.turn ? { turn: state.current.turn } : {}), reason: command.reason },
        },
      ];
    case 'RecordSandboxLaunched': {
      requireOpen(state);
      if (teardownStarted(state)) throw new DomainError('RUN.ALREADY_TORN_DOWN', 'Teardown has already started', 'conflict');
      const events: RunEvent[] = [{ type: 'SandboxLaunched', data: { sandboxId: command.sandboxId, isolated: command.isolated } }];
      if (!command.isolated)
        events.push({ type: 'IsolationDegraded', data: { reason: command.degradedReason ?? 'host cannot isolate' } });
      return events;
    }
    case 'RecordLaunchRefused':
      requireExisting(state);
      return [{ type: 'SandboxLaunchRefused', data: { offendingKey: command.offendingKey, reason: command.reason } }];
    case 'RefuseRunRequest':
      if (state.exists) throw new DomainError('RUN.ALREADY_EXISTS', 'Run already exists', 'conflict');
      return [{ type: 'SandboxLaunchRefused', data: { offendingKey: command.offendingKey, reason: command.reason } }];
    case 'GrantLease':
      requireOpen(state);
      if (teardownStarted(state)) throw new DomainError('RUN.ALREADY_TORN_DOWN', 'No leases after teardown began', 'conflict');
      if (state.cancellation !== undefined) throw new DomainError('RUN.CANCELLED', 'Run is being cancelled', 'conflict');
      if (command.channel === 'refused') throw new DomainError('LEASE.REFUSED', 'This use has no channel', 'forbidden');
      if (Date.parse(command.expiresAt) > Date.parse(state.deadline))
        throw new DomainError('LEASE.BEYOND_DEADLINE', 'A lease cannot outlive its run', 'invalid');
      if (state.activeLeases[command.leaseId]) return [];
      return [
        {
          type: 'LeaseGranted',
          data: {
            leaseId: command.leaseId,
            secretName: command.secretName,
            secretVersion: command.secretVersion,
            operation: command.operation,
            channel: command.channel,
            expiresAt: command.expiresAt,
          },
        },
      ];
    case 'ReleaseLease':
      requireExisting(state);
      // Releasing twice is harmless: a crash between release and its record replays the release.
      if (!state.activeLeases[command.leaseId]) return [];
      return [{ type: 'LeaseReleased', data: { leaseId: command.leaseId } }];
    case 'ExpireLeases': {
      requireExisting(state);
      const now = Date.parse(command.now);
      return Object.entries(state.activeLeases)
        .filter(([, lease]) => command.all === true || Date.parse(lease.expiresAt) <= now)
        .map(([leaseId]) => ({ type: 'LeaseExpired' as const, data: { leaseId } }));
    }
    case 'RecordOperationRequested':
      requireOpen(state);
      return [{ type: 'OperationRequested', data: { operationId: command.operationId, kind: command.kind, target: command.target } }];
    case 'RecordOperationRefused':
      requireExisting(state);
      return [
        {
          type: 'OperationRefused',
          data: { operationId: command.operationId, kind: command.kind, target: command.target, reason: command.reason },
        },
      ];
    case 'RecordOperationCompleted':
      requireExisting(state);
      return [{ type: 'OperationCompleted', data: { operationId: command.operationId, exitCode: command.exitCode } }];
    case 'RecordEgress': {
      requireExisting(state);
      if (command.allowed === 0 && command.refused === 0) return [];
      const distinct = new Map<string, { target: string; reason: string }>();
      for (const r of command.refusals) distinct.set(`${r.target}\n${r.reason}`, r);
      const recorded = [...distinct.values()].slice(0, MAX_EGRESS_REFUSALS_RECORDED_PER_STEP);
      const step = `${command.phase}${command.turn !== undefined ? `[${command.turn}]` : ''}`;
      return [
        {
          type: 'EgressRecorded',
          data: {
            phase: command.phase,
            ...(command.turn !== undefined ? { turn: command.turn } : {}),
            allowed: command.allowed,
            refused: command.refused,
            refusalsNotRecorded: Math.max(0, command.refused - recorded.length),
          },
        },
        ...recorded.map((r, i): RunEvent => ({ type: 'OperationRefused', data: { operationId: `egress:${step}:${i + 1}`, kind: 'egress', target: r.target, reason: r.reason } })),
      ];
    }
    case 'RecordIdentityTokenIssued': {
      // Like a lease: only while the run can still use it, and never beyond its deadline.
      requireOpen(state);
      if (teardownStarted(state)) throw new DomainError('RUN.ALREADY_TORN_DOWN', 'No identity tokens after teardown began', 'conflict');
      if (state.cancellation !== undefined) throw new DomainError('RUN.CANCELLED', 'Run is being cancelled', 'conflict');
      if (Date.parse(command.expiresAt) > Date.parse(state.deadline))
        throw new DomainError('IDENTITY.BEYOND_DEADLINE', 'An identity token cannot outlive its run', 'invalid');
      const { identity, subject, audience, jti, kid, expiresAt } = command;
      return [{ type: 'IdentityTokenIssued', data: { identity, subject, audience, jti, kid, expiresAt } }];
    }
    case 'CancelRun':
      requireOpen(state);
      if (state.cancellation !== undefined) return [];
      if (teardownStarted(state)) throw new DomainError('RUN.ALREADY_TORN_DOWN', 'Teardown has already started', 'conflict');
      return [{ type: 'RunCancellationRequested', data: { reason: command.reason } }];
    case 'RecordSandboxTornDown':
      requireExisting(state);
      if (state.tornDown) return [];
      return [{ type: 'SandboxTornDown', data: { sandboxId: command.sandboxId } }];
    case 'FinishRun': {
      requireOpen(state);
      const teardown = state.phases.find((p) => p.phase === 'teardown');
      if (!teardown || teardown.status === 'Running')
        throw new DomainError('RUN.TEARDOWN_REQUIRED', 'A run finishes only after its teardown', 'conflict');
      const expiries: RunEvent[] = Object.keys(state.activeLeases).map((leaseId) => ({ type: 'LeaseExpired', data: { leaseId } }));
      if (state.cancellation !== undefined) return [...expiries, { type: 'RunCancelled', data: { reason: state.cancellation } }];
      if (state.failure !== undefined) return [...expiries, { type: 'RunFailed', data: { reason: state.failure } }];
      if (teardown.status === 'Failed') return [...expiries, { type: 'RunFailed', data: { reason: teardown.reason ?? 'teardown failed' } }];
      return [...expiries, { type: 'RunCompleted', data: {} }];
    }
    default:
      return assertNever(command, 'run command');
  }
}

export const runDecider = {
  initialState: initialRunState,
  evolve: evolveRun,
  decide: decideRun,
};

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
