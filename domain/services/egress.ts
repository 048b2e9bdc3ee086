import type { ServiceDependencies } from './dependencies';
import { authorize } from './access';
import { readVerifiedWorkspaceSummary } from './verifiedProjections';
import { type Caller, onWorkspace } from './workspaceStream';

/**
 * The workspace's egress allow-list as decisions read it: from the summary row checked against the log (its MAC
 * and stream version; a doubted row is refolded from the log and reported), never from a row a sandbox or
 * anyone else with storage access could have written. A summary written before the list existed holds none.
 */
export async function workspaceEgressList(deps: ServiceDependencies, workspaceId: string): Promise<readonly string[]> {
  const summary = await readVerifiedWorkspaceSummary(deps, workspaceId);
  return summary?.egress.allowedHosts ?? [];
}

/** `GET .../egress`: any member may see where the workspace's sandboxes may connect. */
export async function getEgressAllowList(deps: ServiceDependencies, caller: Caller, workspaceId: string): Promise<{ allowedHosts: readonly string[] }> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'egress.read', requires: 'member', correlationId: caller.correlationId });
  return { allowedHosts: await workspaceEgressList(deps, workspaceId) };
}

/** `PUT .../egress`: the owner replaces the list (recorded as `EgressAllowListSet`; unchanged, nothing is recorded). */
export async function setEgressAllowList(
  deps: ServiceDependencies,
  caller: Caller,
  workspaceId: string,
  allowedHosts: readonly string[],
): Promise<{ allowedHosts: readonly string[] }> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'egress.set', requires: 'owner', correlationId: caller.correlationId });
  const { state } = await onWorkspace(deps, workspaceId, { type: 'SetEgressAllowList', actor: caller.actor, allowedHosts }, caller);
  return { allowedHosts: state.egressAllowedHosts };
}
