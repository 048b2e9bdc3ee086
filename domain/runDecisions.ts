import { DomainError, assertNever } from './errors';
import type { Channel, Phase, RunEvent } from './runEvents';
import { type PhaseRecord, type RunState, evolveRun, initialRunState, isFinished } from './runState';
import { IDENTITY_ERROR, LEASE_ERROR, RUN_ERROR } from './catalogue';

/**
 * At most this many egress refusals of one step become `OperationRefused` events (distinct destinations first);
 * the rest are counted in `EgressRecorded`. One append per step, whatever the agent tries.
 */
export const MAX_EGRESS_REFUSALS_RECORDED_PER_STEP = 20;

export type RunCommand =
  | { type: 'RequestRun'; runId: string; workspaceId: string; deadline: string; specRef: string; specDigest: string }
  | { type: 'StartPhase'; phase: Phase; turn?: number }
  | { type: 'CompletePhase'; phase: Phase; turn?: number }
  | { type: 'FailPhase'; phase: Phase; turn?: number; reason: string }
  | { type: 'RecordSandboxLaunched'; sandboxId: string; isolated: boolean; hostId?: string; degradedReason?: string }
  | { type: 'RecordLaunchRefused'; offendingKey: string; reason: string }
  /** The guard refused a run at the door: recorded on the minted run id's stream, which stays without a run. */
  | { type: 'RefuseRunRequest'; offendingKey: string; reason: string }
  | { type: 'GrantLease'; leaseId: string; secretName: string; secretVersion: number; operation: string; channel: Channel; expiresAt: string }
  | { type: 'ReleaseLease'; leaseId: string }
  | { type: 'ExpireLeases'; now: string; all?: boolean }
  /** Ends every live lease of `secretName` at or below `revokedThrough` (the secret's log says so); idempotent. */
  | { type: 'RevokeLeases'; secretName: string; revokedThrough: number }
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

function lastPhase(state: RunState): PhaseRecord | undefined {
  return state.phases[state.phases.length - 1];
}

function teardownStarted(state: RunState): boolean {
  return state.phases.some((p) => p.phase === 'teardown');
}

function requireExisting(state: RunState): void {
  if (!state.exists) throw new DomainError(RUN_ERROR.NOT_FOUND, 'Run not found', 'not_found');
}

function requireOpen(state: RunState): void {
  requireExisting(state);
  if (isFinished(state)) throw new DomainError(RUN_ERROR.ALREADY_FINISHED, 'Run has already finished', 'conflict');
}

/** Which phase may start next: seed → install → mcp → turn (1..n) → teardown; teardown after anything. */
function assertMayStart(state: RunState, phase: Phase, turn: number | undefined): void {
  if (state.current)
    throw new DomainError(RUN_ERROR.PHASE_IN_PROGRESS, `Phase ${state.current.phase} is still running`, 'conflict');
  if (phase === 'teardown') {
    if (teardownStarted(state)) throw new DomainError(RUN_ERROR.ALREADY_TORN_DOWN, 'Teardown has already started', 'conflict');
    return;
  }
  if (state.failure !== undefined || state.cancellation !== undefined)
    throw new DomainError(RUN_ERROR.TEARDOWN_ONLY, 'After a failure or cancellation only teardown may start', 'conflict');
  if (teardownStarted(state)) throw new DomainError(RUN_ERROR.ALREADY_TORN_DOWN, 'Teardown has already started', 'conflict');
  const last = lastPhase(state);
  const expected: Record<Phase, ReadonlyArray<Phase | undefined>> = {
    seed: [undefined],
    install: ['seed'],
    mcp: ['install'],
    turn: ['mcp', 'turn'],
    teardown: [],
  };
  if (!expected[phase].includes(last?.phase))
    throw new DomainError(RUN_ERROR.PHASE_OUT_OF_ORDER, `Phase ${phase} cannot follow ${last?.phase ?? 'nothing'}`, 'conflict');
  if (phase === 'turn') {
    const wanted = last?.phase === 'turn' ? (last.turn ?? 1) + 1 : 1;
    if (turn !== undefined && turn !== wanted)
      throw new DomainError(RUN_ERROR.PHASE_OUT_OF_ORDER, `Turn ${turn} cannot follow; expected turn ${wanted}`, 'conflict');
  }
}

function assertCurrent(state: RunState, phase: Phase): void {
  if (!state.current || state.current.phase !== phase)
    throw new DomainError(RUN_ERROR.PHASE_NOT_RUNNING, `Phase ${phase} is not running`, 'conflict');
}

export function decideRun(command: RunCommand, state: RunState): RunEvent[] {
  switch (command.type) {
    case 'RequestRun':
      if (state.exists) throw new DomainError(RUN_ERROR.ALREADY_EXISTS, 'Run already exists', 'conflict');
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
      if (teardownStarted(state)) throw new DomainError(RUN_ERROR.ALREADY_TORN_DOWN, 'Teardown has already started', 'conflict');
      const events: RunEvent[] = [{ type: 'SandboxLaunched', data: { sandboxId: command.sandboxId, isolated: command.isolated, ...(command.hostId ? { hostId: command.hostId } : {}) } }];
      if (!command.isolated)
        events.push({ type: 'IsolationDegraded', data: { reason: command.degradedReason ?? 'host cannot isolate' } });
      return events;
    }
    case 'RecordLaunchRefused':
      requireExisting(state);
      return [{ type: 'SandboxLaunchRefused', data: { offendingKey: command.offendingKey, reason: command.reason } }];
    case 'RefuseRunRequest':
      if (state.exists) throw new DomainError(RUN_ERROR.ALREADY_EXISTS, 'Run already exists', 'conflict');
      return [{ type: 'SandboxLaunchRefused', data: { offendingKey: command.offendingKey, reason: command.reason } }];
    case 'GrantLease':
      requireOpen(state);
      if (teardownStarted(state)) throw new DomainError(RUN_ERROR.ALREADY_TORN_DOWN, 'No leases after teardown began', 'conflict');
      if (state.cancellation !== undefined) throw new DomainError(RUN_ERROR.CANCELLED, 'Run is being cancelled', 'conflict');
      if (command.channel === 'refused') throw new DomainError(LEASE_ERROR.REFUSED, 'This use has no channel', 'forbidden');
      if (Date.parse(command.expiresAt) > Date.parse(state.deadline))
        throw new DomainError(LEASE_ERROR.BEYOND_DEADLINE, 'A lease cannot outlive its run', 'invalid');
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
    case 'RevokeLeases':
      requireExisting(state);
      return Object.entries(state.activeLeases)
        .filter(([, lease]) => lease.secretName === command.secretName && lease.secretVersion <= command.revokedThrough)
        .map(([leaseId, lease]) => ({
          type: 'LeaseRevoked' as const,
          data: { leaseId, runId: state.runId, secretName: lease.secretName, secretVersion: lease.secretVersion },
        }));
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
      if (teardownStarted(state)) throw new DomainError(RUN_ERROR.ALREADY_TORN_DOWN, 'No identity tokens after teardown began', 'conflict');
      if (state.cancellation !== undefined) throw new DomainError(RUN_ERROR.CANCELLED, 'Run is being cancelled', 'conflict');
      if (Date.parse(command.expiresAt) > Date.parse(state.deadline))
        throw new DomainError(IDENTITY_ERROR.BEYOND_DEADLINE, 'An identity token cannot outlive its run', 'invalid');
      const { identity, subject, audience, jti, kid, expiresAt } = command;
      return [{ type: 'IdentityTokenIssued', data: { identity, subject, audience, jti, kid, expiresAt } }];
    }
    case 'CancelRun':
      requireOpen(state);
      if (state.cancellation !== undefined) return [];
      if (teardownStarted(state)) throw new DomainError(RUN_ERROR.ALREADY_TORN_DOWN, 'Teardown has already started', 'conflict');
      return [{ type: 'RunCancellationRequested', data: { reason: command.reason } }];
    case 'RecordSandboxTornDown':
      requireExisting(state);
      if (state.tornDown) return [];
      return [{ type: 'SandboxTornDown', data: { sandboxId: command.sandboxId } }];
    case 'FinishRun': {
      requireOpen(state);
      const teardown = state.phases.find((p) => p.phase === 'teardown');
      if (!teardown || teardown.status === 'Running')
        throw new DomainError(RUN_ERROR.TEARDOWN_REQUIRED, 'A run finishes only after its teardown', 'conflict');
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
