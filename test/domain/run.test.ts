import { describe, it, expect } from 'vitest';
import { runDecider, type RunEvent, type Phase, runStatus, runStatusFromRow } from '../../domain/run';
import { specFor } from '../support/decider';

const spec = specFor(runDecider);
const requested: RunEvent = {
  type: 'RunRequested',
  data: { runId: 'r1', workspaceId: 'ws1', deadline: '2026-01-01T01:00:00.000Z', specRef: 'spec:r1', specDigest: 'd1' },
};
const started = (phase: Phase, turn?: number): RunEvent => ({ type: 'PhaseStarted', data: { phase, ...(turn ? { turn } : {}) } });
const completed = (phase: Phase, turn?: number): RunEvent => ({ type: 'PhaseCompleted', data: { phase, ...(turn ? { turn } : {}) } });
const through = (last: 'seed' | 'install' | 'mcp' | 'turn'): RunEvent[] => {
  const order: RunEvent[] = [requested, started('seed'), completed('seed'), started('install'), completed('install'), started('mcp'), completed('mcp'), started('turn', 1), completed('turn', 1)];
  const end = { seed: 3, install: 5, mcp: 7, turn: 9 }[last];
  return order.slice(0, end);
};
const lease = {
  type: 'GrantLease' as const, leaseId: 'l1', secretName: 'NPM_TOKEN', secretVersion: 3, operation: 'install#0',
  channel: 'package-manager-config' as const, expiresAt: '2026-01-01T00:30:00.000Z',
};

describe('run decisions', () => {
  it('is requested once', () => {
    spec.given([]).when({ type: 'RequestRun', runId: 'r1', workspaceId: 'ws1', deadline: '2026-01-01T01:00:00.000Z', specRef: 'spec:r1', specDigest: 'd1' }).then([requested]);
    spec.given([requested]).when({ type: 'RequestRun', runId: 'r1', workspaceId: 'ws1', deadline: 'x', specRef: 'y', specDigest: 'z' }).thenThrows('RUN.ALREADY_EXISTS');
  });
  it('walks seed → install → mcp → turn(1..n) → teardown in order', () => {
    spec.given([requested]).when({ type: 'StartPhase', phase: 'seed' }).then([started('seed')]);
    spec.given(through('seed')).when({ type: 'StartPhase', phase: 'install' }).then([started('install')]);
    spec.given(through('install')).when({ type: 'StartPhase', phase: 'mcp' }).then([started('mcp')]);
    spec.given(through('mcp')).when({ type: 'StartPhase', phase: 'turn' }).then([started('turn', 1)]);
    spec.given(through('turn')).when({ type: 'StartPhase', phase: 'turn' }).then([started('turn', 2)]);
    spec.given(through('turn')).when({ type: 'StartPhase', phase: 'teardown' }).then([started('teardown')]);
  });
  it('refuses every out-of-order start', () => {
    spec.given([requested]).when({ type: 'StartPhase', phase: 'install' }).thenThrows('RUN.PHASE_OUT_OF_ORDER');
    spec.given([requested]).when({ type: 'StartPhase', phase: 'turn' }).thenThrows('RUN.PHASE_OUT_OF_ORDER');
    spec.given(through('seed')).when({ type: 'StartPhase', phase: 'mcp' }).thenThrows('RUN.PHASE_OUT_OF_ORDER');
    spec.given(through('install')).when({ type: 'StartPhase', phase: 'seed' }).thenThrows('RUN.PHASE_OUT_OF_ORDER');
    spec.given(through('turn')).when({ type: 'StartPhase', phase: 'turn', turn: 5 }).thenThrows('RUN.PHASE_OUT_OF_ORDER');
    spec.given([requested, started('seed')]).when({ type: 'StartPhase', phase: 'install' }).thenThrows('RUN.PHASE_IN_PROGRESS');
    spec.given([]).when({ type: 'StartPhase', phase: 'seed' }).thenThrows('RUN.NOT_FOUND');
  });
  it('completes or fails only the running phase', () => {
    spec.given([requested, started('seed')]).when({ type: 'CompletePhase', phase: 'seed' }).then([completed('seed')]);
    spec.given([requested, started('seed')]).when({ type: 'CompletePhase', phase: 'install' }).thenThrows('RUN.PHASE_NOT_RUNNING');
    spec.given(through('seed')).when({ type: 'FailPhase', phase: 'seed', reason: 'x' }).thenThrows('RUN.PHASE_NOT_RUNNING');
    spec.given([...through('mcp'), started('turn', 1)]).when({ type: 'FailPhase', phase: 'turn', reason: 'exit 1' })
      .then([{ type: 'PhaseFailed', data: { phase: 'turn', turn: 1, reason: 'exit 1' } }]);
  });
  it('after a failure only teardown may start, from any phase', () => {
    for (const phase of ['seed', 'install', 'mcp'] as const) {
      const upTo = phase === 'seed' ? [requested] : through(phase === 'install' ? 'seed' : 'install');
      const failed: RunEvent[] = [...upTo, started(phase), { type: 'PhaseFailed', data: { phase, reason: 'boom' } }];
      spec.given(failed).when({ type: 'StartPhase', phase: phase === 'mcp' ? 'turn' : phase === 'seed' ? 'install' : 'mcp' }).thenThrows('RUN.TEARDOWN_ONLY');
      spec.given(failed).when({ type: 'StartPhase', phase: 'teardown' }).then([started('teardown')]);
    }
  });
  it('cancellation from pending or any phase leads to teardown and Cancelled', () => {
    const cancel: RunEvent = { type: 'RunCancellationRequested', data: { reason: 'user' } };
    spec.given([requested]).when({ type: 'CancelRun', reason: 'user' }).then([cancel]);
    spec.given([...through('install'), started('mcp')]).when({ type: 'CancelRun', reason: 'user' }).then([cancel]);
    spec.given([requested, cancel]).when({ type: 'CancelRun', reason: 'again' }).then([]);
    spec.given([requested, cancel]).when({ type: 'StartPhase', phase: 'seed' }).thenThrows('RUN.TEARDOWN_ONLY');
    spec.given([requested, cancel, started('teardown'), completed('teardown')]).when({ type: 'FinishRun' })
      .then([{ type: 'RunCancelled', data: { reason: 'user' } }]);
  });
  it('teardown happens once; the run finishes only after it', () => {
    const tornDown = [...through('turn'), started('teardown'), completed('teardown')];
    spec.given(tornDown).when({ type: 'StartPhase', phase: 'teardown' }).thenThrows('RUN.ALREADY_TORN_DOWN');
    spec.given(through('turn')).when({ type: 'FinishRun' }).thenThrows('RUN.TEARDOWN_REQUIRED');
    spec.given([...through('turn'), started('teardown')]).when({ type: 'FinishRun' }).thenThrows('RUN.TEARDOWN_REQUIRED');
    spec.given(tornDown).when({ type: 'FinishRun' }).then([{ type: 'RunCompleted', data: {} }]);
    spec.given([...tornDown, { type: 'RunCompleted', data: {} }]).when({ type: 'FinishRun' }).thenThrows('RUN.ALREADY_FINISHED');
    spec.given([...tornDown, { type: 'RunCompleted', data: {} }]).when({ type: 'CancelRun', reason: 'late' }).thenThrows('RUN.ALREADY_FINISHED');
    spec.given(tornDown).when({ type: 'CancelRun', reason: 'late' }).thenThrows('RUN.ALREADY_TORN_DOWN');
  });
  it('a failed phase or failed teardown finishes as Failed with its reason', () => {
    const failed: RunEvent[] = [requested, started('seed'), { type: 'PhaseFailed', data: { phase: 'seed', reason: 'no disk' } }, started('teardown'), completed('teardown')];
    spec.given(failed).when({ type: 'FinishRun' }).then([{ type: 'RunFailed', data: { reason: 'no disk' } }]);
    const teardownFailed: RunEvent[] = [...through('turn'), started('teardown'), { type: 'PhaseFailed', data: { phase: 'teardown', reason: 'rm failed' } }];
    spec.given(teardownFailed).when({ type: 'FinishRun' }).then([{ type: 'RunFailed', data: { reason: 'rm failed' } }]);
  });
  it('leases: granted while running within the deadline, released once, expired at finish', () => {
    const granted: RunEvent = { type: 'LeaseGranted', data: { leaseId: 'l1', secretName: 'NPM_TOKEN', secretVersion: 3, operation: 'install#0', channel: 'package-manager-config', expiresAt: '2026-01-01T00:30:00.000Z' } };
    spec.given([...through('seed'), started('install')]).when(lease).then([granted]);
    spec.given([...through('seed'), started('install')]).when({ ...lease, expiresAt: '2026-01-01T02:00:00.000Z' }).thenThrows('LEASE.BEYOND_DEADLINE');
    spec.given([...through('seed'), started('install')]).when({ ...lease, channel: 'refused' }).thenThrows('LEASE.REFUSED');
    spec.given([...through('seed'), started('install'), granted]).when({ type: 'ReleaseLease', leaseId: 'l1' }).then([{ type: 'LeaseReleased', data: { leaseId: 'l1' } }]);
    spec.given([...through('seed'), started('install'), granted, { type: 'LeaseReleased', data: { leaseId: 'l1' } }]).when({ type: 'ReleaseLease', leaseId: 'l1' }).then([]);
    spec.given([...through('turn'), started('teardown')]).when(lease).thenThrows('RUN.ALREADY_TORN_DOWN');
    spec.given([...through('seed'), started('install'), granted, completed('install'), started('teardown'), completed('teardown')]).when({ type: 'FinishRun' })
      .then([{ type: 'LeaseExpired', data: { leaseId: 'l1' } }, { type: 'RunCompleted', data: {} }]);
    spec.given([...through('seed'), started('install'), granted]).when({ type: 'ExpireLeases', now: '2026-01-01T00:29:00.000Z' }).then([]);
    spec.given([...through('seed'), started('install'), granted]).when({ type: 'ExpireLeases', now: '2026-01-01T00:30:00.000Z' })
      .then([{ type: 'LeaseExpired', data: { leaseId: 'l1' } }]);
  });
  it('sandbox launch records isolation degradation; teardown is recorded once', () => {
    spec.given(through('seed')).when({ type: 'RecordSandboxLaunched', sandboxId: 'sb1', isolated: false, degradedReason: 'not root' })
      .then([{ type: 'SandboxLaunched', data: { sandboxId: 'sb1', isolated: false } }, { type: 'IsolationDegraded', data: { reason: 'not root' } }]);
    spec.given(through('seed')).when({ type: 'RecordSandboxLaunched', sandboxId: 'sb1', isolated: true, hostId: 'h1' })
      .then([{ type: 'SandboxLaunched', data: { sandboxId: 'sb1', isolated: true, hostId: 'h1' } }]);
    spec.given([requested]).when({ type: 'RecordLaunchRefused', offendingKey: 'OPENAI_API_KEY', reason: 'well-known-provider-key' })
      .then([{ type: 'SandboxLaunchRefused', data: { offendingKey: 'OPENAI_API_KEY', reason: 'well-known-provider-key' } }]);
    spec.given([requested, { type: 'SandboxTornDown', data: { sandboxId: 'sb1' } }]).when({ type: 'RecordSandboxTornDown', sandboxId: 'sb1' }).then([]);
  });
  it('the host a sandbox was placed on folds into the state; an older SandboxLaunched without one leaves none', () => {
    const fold = (events: RunEvent[]) => events.reduce(runDecider.evolve, runDecider.initialState());
    const launched = (data: { sandboxId: string; isolated: boolean; hostId?: string }): RunEvent => ({ type: 'SandboxLaunched', data });
    expect(fold([requested, launched({ sandboxId: 'sb1', isolated: true, hostId: 'h1' })])).toMatchObject({ sandboxId: 'sb1', sandboxHostId: 'h1' });
    expect(fold([requested, launched({ sandboxId: 'sb1', isolated: true })]).sandboxHostId).toBeUndefined();
  });
  it('status projection shows phases and outcome', () => {
    spec.given([...through('turn'), started('teardown'), completed('teardown'), { type: 'RunCompleted', data: {} }]).thenState((s) => {
      const view = runStatus(s);
      expect(view.status).toBe('Completed');
      expect(view.phases.length).toBe(5);
    });
  });
  it('a stored status row reads back as the view it was written from; older rows count no egress; no status, no view', () => {
    const granted: RunEvent = { type: 'LeaseGranted', data: { leaseId: 'l1', secretName: 'NPM_TOKEN', secretVersion: 3, operation: 'install#0', channel: 'package-manager-config', expiresAt: '2026-01-01T00:30:00.000Z' } };
    spec.given([...through('seed'), started('install'), granted]).thenState((s) => {
      const row = JSON.parse(JSON.stringify(runStatus(s))) as Record<string, unknown>;
      expect(runStatusFromRow(row)).toEqual(runStatus(s));
      const { egress: _absent, ...older } = row;
      expect(runStatusFromRow(older)?.egress).toEqual({ allowed: 0, refused: 0 });
      expect(runStatusFromRow({ ...row, status: 'Sleeping' })).toBeUndefined();
    });
  });
});

describe('who asked for a run', () => {
  it('is the actor of RunRequested, whose uses every lease of the run is checked against', () => {
    const recorded = { ...requested, meta: { at: '2026-01-01T00:00:00.000Z', actor: 'bob' } } as RunEvent;
    spec.given([recorded, started('seed')]).thenState((state) => expect(state.requestedBy).toBe('bob'));
    spec.given([requested]).thenState((state) => expect(state.requestedBy).toBeUndefined());
  });
});
