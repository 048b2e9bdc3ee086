import { DomainError } from '../errors';
import type { Role, WorkspaceSummaryView } from '../workspace';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import { readVerifiedWorkspaceSummary } from './verifiedProjections';
import { type Caller, onWorkspace } from './workspaceStream';
import { WORKSPACE_ERROR } from '../catalogue';

export { type Caller, projectWorkspace } from './workspaceStream';

/** `retentionDays` (7-90): the soft-delete retention of the workspace and its vault, fixed now (absent: chosen at deletion). */
export async function createWorkspace(deps: ServiceDependencies, caller: Caller, name: string, retentionDays?: number): Promise<{ id: string; name: string; retentionDays?: number }> {
  const workspaceId = deps.ids.next();
  await onWorkspace(deps, workspaceId, { type: 'CreateWorkspace', workspaceId, name, owner: caller.actor, ...(retentionDays !== undefined ? { retentionDays } : {}) }, caller);
  return { id: workspaceId, name, ...(retentionDays !== undefined ? { retentionDays } : {}) };
}

export async function getWorkspace(
  deps: ServiceDependencies,
  caller: Caller,
  workspaceId: string,
): Promise<Omit<WorkspaceSummaryView, 'status'>> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'workspace.read', requires: 'member', correlationId: caller.correlationId });
  const summary = await readVerifiedWorkspaceSummary(deps, workspaceId);
  if (!summary) throw new DomainError(WORKSPACE_ERROR.NOT_FOUND, 'Workspace not found', 'not_found');
  const { status: _internal, ...visible } = summary;
  return visible;
}

export async function setMember(
  deps: ServiceDependencies,
  caller: Caller,
  workspaceId: string,
  userId: string,
  role: Role,
): Promise<{ userId: string; role: Role }> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'members.set', requires: 'owner', correlationId: caller.correlationId });
  await onWorkspace(deps, workspaceId, { type: 'SetMember', actor: caller.actor, userId, role }, caller);
  return { userId, role };
}

export async function removeMember(deps: ServiceDependencies, caller: Caller, workspaceId: string, userId: string): Promise<void> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'members.remove', requires: 'owner', correlationId: caller.correlationId });
  await onWorkspace(deps, workspaceId, { type: 'RemoveMember', actor: caller.actor, userId }, caller);
}
