import type { GatewayBinding } from '../ports/gatewayBearers';
import type { LiveSandbox, RunSandboxes } from '../ports/runSandboxes';
import { isRecoverable, type SandboxHost } from '../ports/sandboxHost';
import { isFinished } from '../run';
import type { ServiceDependencies } from './dependencies';
import { HOST_CANNOT_ADOPT, reattachSandbox } from './recoveredSandbox';
import type { RunSpecStore } from './runPorts';
import { readRunSpec } from './runs';
import { readRunStream } from './runStream';

/** Where the gateway finds a run's sandbox that another instance seeded (docs/gateway.md "Any instance"). */
export interface GatewayAdoption {
  readonly host: SandboxHost;
  /** The RunSpec's standing env, for the agent processes an operation runs (the holder's sandbox has it too). */
  readonly specs: RunSpecStore;
}

/** The sandbox one operation runs in, and what to do when it is done. */
export type GatewaySandbox = { readonly ok: true; readonly live: LiveSandbox; readonly leave: () => Promise<void> } | { readonly ok: false; readonly reason: string };

const stay = async (): Promise<void> => undefined;
const ANOTHER_CONTAINER = 'the bearer is for another container of the run, not the one it runs in now';

/**
 * The bearer's sandbox. This instance's own (it seeded or took over the run) when it holds one; otherwise the
 * run's current sandbox as the run's events name it, shared from the host beside whichever instance holds it
 * (recoveredSandbox.ts, the function the run steps adopt with). The bearer's container must be that sandbox:
 * decided from the run's stream, never from anything a sandbox or its host could write.
 */
export async function sandboxForBearer(
  deps: Pick<ServiceDependencies, 'store' | 'vault' | 'resolver' | 'clock'>,
  sandboxes: RunSandboxes,
  adoption: GatewayAdoption | undefined,
  binding: GatewayBinding,
): Promise<GatewaySandbox> {
  const held = sandboxes.get(binding.runId);
  if (held) {
    if (held.workspaceId !== binding.workspaceId || held.handle.sandboxId !== binding.containerId)
      return { ok: false, reason: ANOTHER_CONTAINER };
    return { ok: true, live: held, leave: stay };
  }
  const state = (await readRunStream(deps.store, binding.workspaceId, binding.runId)).state;
  if (!state.exists) return { ok: false, reason: 'the run does not exist' };
  if (state.tornDown || isFinished(state) || state.phases.some((p) => p.phase === 'teardown'))
    return { ok: false, reason: "the run's sandbox is torn down, or being torn down" };
  if (state.sandboxId === undefined) return { ok: false, reason: 'the run has no sandbox' };
  if (state.sandboxId !== binding.containerId) return { ok: false, reason: ANOTHER_CONTAINER };
  if (!adoption) return { ok: false, reason: "this instance does not hold the run's sandbox, and this gateway adopts none" };
  if (!isRecoverable(adoption.host)) return { ok: false, reason: HOST_CANNOT_ADOPT };
  const { env } = await readRunSpec(adoption, state);
  const reattached = await reattachSandbox(deps, adoption.host, { workspaceId: binding.workspaceId, runId: binding.runId, sandboxId: state.sandboxId, hostId: state.sandboxHostId, ...(env ? { env } : {}) }, { mode: 'share' });
  if (!reattached.ok) return reattached;
  const { handle, redactor, guard, leave } = reattached.sandbox;
  return { ok: true, live: { workspaceId: binding.workspaceId, runId: binding.runId, handle, redactor, guard, deadline: state.deadline }, leave };
}
