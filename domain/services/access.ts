import { DomainError } from '../errors';
import { type Role, type WorkspaceSummaryView, roleIn } from '../workspace';
import type { ServiceDependencies } from './dependencies';
import { readVerifiedWorkspaceSummary } from './verifiedProjections';
import { handleCommand } from '../commandHandler';
import { accessDenialDecider } from '../accessDenial';
import { accessDeniedStreamId } from '../streams';
import { WORKSPACE_ERROR } from '../catalogue';

export interface WorkspaceAccess {
  readonly workspaceId: string;
  readonly actor: string;
  readonly role: Role;
}

const notFound = (): DomainError => new DomainError(WORKSPACE_ERROR.NOT_FOUND, 'Workspace not found', 'not_found');

const membersOf = (summary: WorkspaceSummaryView): Record<string, Role> => Object.fromEntries(summary.members.map((m) => [m.userId, m.role]));

/**
 * The one access check every workspace route runs: one point read of the workspace summary, checked against
 * the log (its MAC and stream version; a doubted row is refolded from the log and reported). A caller who
 * is not a member sees 404 (the workspace's existence is not disclosed); a member asking for an owner's
 * action sees 403. Denials of authenticated callers on an existing workspace are recorded as `AccessDenied`.
 */
export async function authorize(
  deps: ServiceDependencies,
  request: { workspaceId: string; actor: string; action: string; requires: Role; correlationId: string },
): Promise<WorkspaceAccess> {
  const summary = await readVerifiedWorkspaceSummary(deps, request.workspaceId);
  // A workspace being deleted (or sealed) answers 404 to everyone and records nothing: its log is closing.
  if (!summary || summary.status !== 'Active') throw notFound();
  const role = roleIn(membersOf(summary), request.actor);
  if (role === undefined) {
    await recordDenial(deps, request, 'not a member');
    throw notFound();
  }
  if (request.requires === 'owner' && role !== 'owner') {
    await recordDenial(deps, request, 'owner required');
    throw new DomainError(WORKSPACE_ERROR.OWNER_REQUIRED, 'Only an owner of this workspace may do this', 'forbidden');
  }
  return { workspaceId: request.workspaceId, actor: request.actor, role };
}

/**
 * Records an authenticated caller's refusal as `AccessDenied`, on a stream of its own (domain/accessDenial.ts).
 * Callers have found the workspace Active (a sealed log takes no more records).
 */
export async function recordDenial(
  deps: ServiceDependencies,
  request: { workspaceId: string; actor: string; action: string; correlationId: string },
  reason: string,
): Promise<void> {
  await handleCommand(deps, {
    workspaceId: request.workspaceId, streamId: accessDeniedStreamId(deps.ids.next()), decider: accessDenialDecider,
    command: { type: 'RecordAccessDenied', actor: request.actor, action: request.action, reason }, actor: request.actor, correlationId: request.correlationId,
  });
}
