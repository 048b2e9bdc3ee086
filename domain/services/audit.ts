import type { RecordedEvent } from '../events';
import type { VerifyResult } from '../ports/eventStore';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import type { Caller } from './workspaces';

export const MAX_AUDIT_PAGE = 500;

export async function readAudit(
  deps: ServiceDependencies,
  caller: Caller,
  request: { workspaceId: string; after?: number; limit?: number },
): Promise<{ records: readonly RecordedEvent[]; next?: number }> {
  await authorize(deps, { workspaceId: request.workspaceId, actor: caller.actor, action: 'audit.read', requires: 'member', correlationId: caller.correlationId });
  const page = await deps.store.readLog(request.workspaceId, {
    after: request.after ?? 0,
    limit: Math.min(request.limit ?? 100, MAX_AUDIT_PAGE),
  });
  return { records: page.records, ...(page.next !== undefined ? { next: page.next } : {}) };
}

export async function verifyAudit(deps: ServiceDependencies, caller: Caller, workspaceId: string): Promise<VerifyResult> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'audit.verify', requires: 'member', correlationId: caller.correlationId });
  return deps.store.verify(workspaceId);
}
