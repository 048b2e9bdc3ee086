import { isDomainError } from '../errors';
import { isFinished } from '../run';
import { releaseLeases } from './leasedProcess';
import { recordEgress } from './runSteps';
import { RunContext, type RunRuntime } from './runContext';

/** Runs a command whose refusal means "already done" (teardown and finish are replayed after crashes). */
async function idempotent(action: () => Promise<unknown>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!isDomainError(error) || error.kind !== 'conflict') throw error;
  }
}

/**
 * Cancellation or the deadline: kill the running command's process group now (through the run's abort
 * signal), and for the deadline fail the phase that was running, so the run ends Failed with that reason.
 */
export async function interrupt(runtime: RunRuntime, workspaceId: string, runId: string, reason: 'cancelled' | 'deadline exceeded'): Promise<{ ok: true }> {
  runtime.aborts.abort(runId, reason);
  const ctx = new RunContext(runtime, workspaceId, runId);
  const state = await ctx.state();
  if (reason === 'deadline exceeded' && state.current && state.current.phase !== 'teardown') {
    const current = state.current.phase;
    await idempotent(() => ctx.record({ type: 'FailPhase', phase: current, reason }));
  }
  return { ok: true };
}

/**
 * Teardown, whatever happened before: fail a phase left running (its process died with a crash, or was killed
 * by a cancel), stop MCP servers (their leases are released as they exit), tear the sandbox down — or, when
 * this instance does not hold it (restarted, or the run moved), remove it through the host: its disk, its
 * container, or the sandbox on its host agent with every process in it — release every lease
 * still held, revoke the run's gateway bearers. Every step is safe to repeat.
 */
export async function teardown(runtime: RunRuntime, workspaceId: string, runId: string): Promise<{ ok: true }> {
  const ctx = new RunContext(runtime, workspaceId, runId);
  let state = await ctx.state();
  if (isFinished(state)) return { ok: true };
  runtime.aborts.abort(runId);
  const current = state.current;
  if (current && current.phase !== 'teardown') {
    const reason = state.cancellation !== undefined ? 'cancelled' : runtime.sandboxes.get(runId) ? 'interrupted' : 'sandbox lost: the host instance that ran it is gone (restarted or moved)';
    await idempotent(() => ctx.record({ type: 'FailPhase', phase: current.phase, reason }));
  }
  state = await ctx.state();
  if (!state.phases.some((p) => p.phase === 'teardown')) await idempotent(() => ctx.record({ type: 'StartPhase', phase: 'teardown' }));

  const live = runtime.live.get(runId);
  for (const server of live?.servers ?? []) {
    await server.process.stop();
    await server.done;
  }
  const sandbox = runtime.sandboxes.get(runId);
  // What MCP servers did after the last step, before the proxy goes with the sandbox.
  if (sandbox) await recordEgress(ctx, 'teardown', undefined).catch(() => undefined);
  if (sandbox) await runtime.host.teardown(sandbox.handle);
  // Not held here (the last step ran on another instance): a host agent still runs it, with its MCP servers.
  else if (state.sandboxId) await runtime.removeLeftovers(state.sandboxId, { runId, workspaceId, ...(state.sandboxHostId ? { hostId: state.sandboxHostId } : {}) });

  state = await ctx.state();
  await releaseLeases(ctx, Object.keys(state.activeLeases).map((leaseId) => ({ leaseId })));
  await runtime.bearers.revokeRun(workspaceId, runId);
  runtime.sandboxes.remove(runId);
  runtime.live.delete(runId);
  runtime.aborts.forget(runId);
  if (state.sandboxId) await ctx.record({ type: 'RecordSandboxTornDown', sandboxId: state.sandboxId });
  await idempotent(() => ctx.record({ type: 'CompletePhase', phase: 'teardown' }));
  return { ok: true };
}

export async function finish(runtime: RunRuntime, workspaceId: string, runId: string): Promise<{ status: string }> {
  const ctx = new RunContext(runtime, workspaceId, runId);
  await idempotent(() => ctx.record({ type: 'FinishRun' }));
  return { status: (await ctx.state()).status };
}
