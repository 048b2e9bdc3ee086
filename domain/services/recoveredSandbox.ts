import { NOTHING_ALLOWED } from '../egress';
import type { GuardPolicy } from '../launchGuard';
import { SANDBOX_ERROR } from '../catalogue';
import { isDomainError } from '../errors';
import { isRecoverable, type SandboxHandle, type SandboxHost, type SharedSandbox } from '../ports/sandboxHost';
import { RefreshableRedactor } from '../redaction/refreshableRedactor';
import type { RunState } from '../run';
import type { RunSpec } from '../runSpec';
import { expireLeasesOfLostInstance, restartMcpServers, type StartMcpServer } from './adoptedMcpServers';
import type { ServiceDependencies } from './dependencies';
import type { LiveRun, RunContext } from './runContext';
import { loadSecretMaterial } from './runSecrets';

/** Why a host without `find`/`adopt` cannot serve a run another instance seeded. */
export const HOST_CANNOT_ADOPT =
  "this instance does not hold the run's sandbox, and its sandbox host cannot adopt one another instance made (its sandboxes end with the instance that made them)";

/** The run's sandbox as this instance now serves it, with a redactor and guard rebuilt from the vault as of now. */
export interface ReattachedSandbox {
  readonly handle: SandboxHandle;
  readonly redactor: RefreshableRedactor;
  readonly guard: GuardPolicy;
  /** Ends a share (the holder keeps the sandbox); nothing to do after a take-over, which lasts until teardown. */
  readonly leave: () => Promise<void>;
}

export type Reattached = { readonly ok: true; readonly sandbox: ReattachedSandbox } | { readonly ok: false; readonly reason: string };

/**
 * `take-over`: the run moves to this instance (a run step after a restart or a move); `beforeTakeOver` runs once
 * the sandbox is found, before the host stops what the lost instance started. `share`: served beside its holder,
 * which keeps its processes, leases and MCP servers (a gateway operation reaching another instance).
 */
export type Reattachment = { readonly mode: 'take-over'; readonly beforeTakeOver: () => Promise<unknown> } | { readonly mode: 'share' };

/**
 * The one way an instance reaches a run's sandbox it did not make: found by the run id on a host whose sandboxes
 * outlive their instance (a container's labels), asked of the machine the run's events name (`hostId`) and
 * accepted only when it is the sandbox they name (`sandboxId`, both from `SandboxLaunched`), and served with the
 * redactor and guard `seed` would build now.
 */
export async function reattachSandbox(
  deps: Pick<ServiceDependencies, 'vault' | 'resolver' | 'clock'>,
  host: SandboxHost,
  run: {
    readonly workspaceId: string;
    readonly runId: string;
    readonly sandboxId: string | undefined;
    /** The host agent `SandboxLaunched` names (remote hosts; older runs have none). */
    readonly hostId?: string | undefined;
    readonly env?: Readonly<Record<string, string>>;
  },
  how: Reattachment,
): Promise<Reattached> {
  if (!isRecoverable(host)) return { ok: false, reason: HOST_CANNOT_ADOPT };
  const expected = { ...(run.sandboxId !== undefined ? { sandboxId: run.sandboxId } : {}), ...(run.hostId !== undefined ? { hostId: run.hostId } : {}) };
  const found = await host.find(run.runId, run.workspaceId, expected);
  if (!found) return { ok: false, reason: 'no sandbox of the run is running (it was torn down, or its engine lost it)' };
  if (run.sandboxId !== undefined && found.sandboxId !== run.sandboxId)
    return { ok: false, reason: "the sandbox running under the run's id is not the one the run's events name" };
  if (how.mode === 'take-over') await how.beforeTakeOver();
  const material = await loadSecretMaterial(deps, run.workspaceId);
  const redactor = new RefreshableRedactor(material.values);
  const request = { redactor, guard: material.guard, ...(run.env ? { env: run.env } : {}) };
  if (how.mode === 'share') {
    let shared: SharedSandbox;
    try {
      shared = await host.share(found, request);
    } catch (error) {
      // Found by its labels, but stopped or removed since (a teardown under way).
      if (isDomainError(error) && error.code === SANDBOX_ERROR.GONE) return { ok: false, reason: "the run's sandbox is no longer running" };
      throw error;
    }
    return { ok: true, sandbox: { handle: shared.handle, redactor, guard: material.guard, leave: () => shared.leave() } };
  }
  const handle = await host.adopt(found, { ...request, egress: NOTHING_ALLOWED });
  return { ok: true, sandbox: { handle, redactor, guard: material.guard, leave: async () => undefined } };
}

/**
 * After a restart or a move, this instance has no record of the run's sandbox; a host whose sandboxes outlive
 * their instance (Docker) finds it by the run id and this instance takes it over. The leases the lost instance's
 * processes held end as expired, the host stops those processes, and MCP servers the run had are started again
 * under new leases (`startServer`). Returns whether the run has its sandbox again.
 */
export async function recoverSandbox(ctx: RunContext, state: RunState, spec: RunSpec, startServer?: StartMcpServer): Promise<boolean> {
  const reattached = await reattachSandbox(
    ctx.runtime.deps,
    ctx.runtime.host,
    { workspaceId: ctx.workspaceId, runId: ctx.runId, sandboxId: state.sandboxId, hostId: state.sandboxHostId, ...(spec.env ? { env: spec.env } : {}) },
    { mode: 'take-over', beforeTakeOver: () => expireLeasesOfLostInstance(ctx) },
  );
  if (!reattached.ok) return false;
  const { handle, redactor, guard } = reattached.sandbox;
  const live: LiveRun = { redactor, servers: [] };
  ctx.runtime.live.set(ctx.runId, live);
  ctx.runtime.sandboxes.put({ workspaceId: ctx.workspaceId, runId: ctx.runId, handle, redactor, guard, deadline: state.deadline });
  const sandbox = ctx.runtime.sandboxes.get(ctx.runId);
  if (startServer && sandbox) await restartMcpServers(ctx, spec, live, sandbox, startServer);
  return true;
}
