import { handleCommand } from '../commandHandler';
import { DomainError } from '../errors';
import type { ProjectionWrite } from '../ports/eventStore';
import { projectionKeys, workspaceStreamId } from '../streams';
import { type Role, type WorkspaceState, workspaceDecider, workspaceSummary } from '../workspace';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';

export interface Caller {
  readonly actor: string;
  readonly correlationId: string;
}

export const projectWorkspace = (state: WorkspaceState): readonly ProjectionWrite[] => [
  { kind: 'upsert', key: projectionKeys.workspace, value: workspaceSummary(state) },
];

export async function createWorkspace(deps: ServiceDependencies, caller: Caller, name: string): Promise<{ id: string; name: string }> {
  const workspaceId = deps.ids.next();
  await handleCommand(deps, {
    workspaceId,
    streamId: workspaceStreamId(workspaceId),
    decider: workspaceDecider,
    command: { type: 'CreateWorkspace', workspaceId, name, owner: caller.actor },
    actor: caller.actor,
    correlationId: caller.correlationId,
    project: projectWorkspace,
  });
  return { id: workspaceId, name };
}

export async function getWorkspace(
  deps: ServiceDependencies,
  caller: Caller,
  workspaceId: string,
): Promise<Readonly<Record<string, unknown>>> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'workspace.read', requires: 'member', correlationId: caller.correlationId });
  const summary = await deps.store.readProjection(workspaceId, projectionKeys.workspace);
  if (!summary) throw new DomainError('WORKSPACE.NOT_FOUND', 'Workspace not found', 'not_found');
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
  await handleCommand(deps, {
    workspaceId,
    streamId: workspaceStreamId(workspaceId),
    decider: workspaceDecider,
    command: { type: 'SetMember', actor: caller.actor, userId, role },
    actor: caller.actor,
    correlationId: caller.correlationId,
    project: projectWorkspace,
  });
  return { userId, role };
}

export async function removeMember(deps: ServiceDependencies, caller: Caller, workspaceId: string, userId: string): Promise<void> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'members.remove', requires: 'owner', correlationId: caller.correlationId });
  await handleCommand(deps, {
    workspaceId,
    streamId: workspaceStreamId(workspaceId),
    decider: workspaceDecider,
    command: { type: 'RemoveMember', actor: caller.actor, userId },
    actor: caller.actor,
    correlationId: caller.correlationId,
    project: projectWorkspace,
  });
}
