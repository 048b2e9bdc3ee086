import { DomainError } from '../errors';
import { type IdentityUses, type WorkloadIdentity, identityIn, tokenSubject } from '../workloadIdentity';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import { type Caller, onWorkspace, readWorkspace } from './workspaceStream';
import { IDENTITY_ERROR } from '../catalogue';

/** What the identity routes show: the definition, and the `sub` its tokens carry (what the cloud side registers). */
export interface IdentityListing {
  readonly name: string;
  readonly subject: string;
  readonly tokenSubject: string;
  readonly audience: string;
  readonly uses: IdentityUses;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

function listingOf(workspaceId: string, identity: WorkloadIdentity): IdentityListing {
  const { name, subject, audience, uses, updatedAt, updatedBy } = identity;
  return { name, subject, tokenSubject: tokenSubject(workspaceId, subject), audience, uses, updatedAt, updatedBy };
}

/** Owners define (or redefine) an identity; the definition is an event on the workspace's own stream. */
export async function defineIdentity(
  deps: ServiceDependencies,
  caller: Caller,
  request: { workspaceId: string; name: string; subject: string; audience: string; uses: IdentityUses },
): Promise<{ created: boolean; identity: IdentityListing }> {
  const { workspaceId, name, subject, audience, uses } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'identities.define', requires: 'owner', correlationId: caller.correlationId });
  let created = false;
  const result = await onWorkspace(deps, workspaceId, { type: 'DefineIdentity', actor: caller.actor, name, subject, audience, uses }, caller, {
    beforeAppend: async (_events, before) => {
      created = !identityIn(before.identities ?? {}, name);
    },
  });
  const identity = identityIn(result.state.identities ?? {}, name);
  if (!identity) throw new DomainError(IDENTITY_ERROR.NOT_FOUND, `No identity named ${name}`, 'not_found');
  return { created, identity: listingOf(workspaceId, identity) };
}

/** Members list identities, read from the workspace's log (the same fold the gateway decides on). */
export async function listIdentities(deps: ServiceDependencies, caller: Caller, workspaceId: string): Promise<readonly IdentityListing[]> {
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'identities.list', requires: 'member', correlationId: caller.correlationId });
  const workspace = await readWorkspace(deps.store, workspaceId);
  return Object.values(workspace.identities ?? {})
    .map((identity) => listingOf(workspaceId, identity))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Owners delete an identity: from the next request on, no run gets a token of it (tokens already issued live on). */
export async function deleteIdentity(deps: ServiceDependencies, caller: Caller, request: { workspaceId: string; name: string }): Promise<void> {
  const { workspaceId, name } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'identities.delete', requires: 'owner', correlationId: caller.correlationId });
  await onWorkspace(deps, workspaceId, { type: 'DeleteIdentity', actor: caller.actor, name }, caller);
}
