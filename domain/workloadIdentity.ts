import { type LeaseRequester, type UseAudience, describeAudience, useAdmits } from './secretPolicy';
import { IDENTITY_ERROR } from './catalogue';
import type { Decision, RefusalCode } from './decision';

/**
 * Workspace identities (docs/identity.md): an owner names a subject and an audience, and who may use them; a run's
 * agent asks the gateway for a short-lived RS256 JWT carrying them, which a cloud (Entra ID federated credentials,
 * AWS, GCP) exchanges for its own token. The platform is the issuer every workspace shares, so the subject in the
 * token is the owner's subject under the workspace's id: an owner of one workspace can never mint the subject
 * another workspace's cloud trusts.
 */

export const IDENTITY_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Visible ASCII without spaces; `:` and `/` allowed (`repo:acme/app:env:prod`). */
export const IDENTITY_SUBJECT_PATTERN = /^[\x21-\x7e]{1,200}$/;
export const IDENTITY_AUDIENCE_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** The longest a workload identity token may live; a run's deadline shortens it further. */
export const WORKLOAD_TOKEN_MAX_MS = 10 * 60_000;

/** Who may ask for a token of an identity: the `identity` use, shaped as a secret's uses are. */
export interface IdentityUses {
  readonly identity: UseAudience;
}

export interface WorkloadIdentity {
  readonly name: string;
  /** The owner's stable subject; the token's `sub` is `tokenSubject(workspaceId, subject)`. */
  readonly subject: string;
  readonly audience: string;
  readonly uses: IdentityUses;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

/** The token's `sub`: the workspace's namespace, then the owner's subject. What an owner registers in the cloud. */
export function tokenSubject(workspaceId: string, subject: string): string {
  return `workspace:${workspaceId}:${subject}`;
}

export const IDENTITY_REFUSAL = {
  NOT_FOUND: IDENTITY_ERROR.NOT_FOUND,
  USE_EXCLUDES_CALLER: IDENTITY_ERROR.USE_EXCLUDES_CALLER,
} as const;

export type IdentityTokenDecision = Decision<{ readonly identity: WorkloadIdentity; readonly subject: string }, RefusalCode<typeof IDENTITY_REFUSAL>>;

/** An identity by name, read without trusting a prototype key as a name. */
export function identityIn(identities: Readonly<Record<string, WorkloadIdentity>>, name: string): WorkloadIdentity | undefined {
  return Object.prototype.hasOwnProperty.call(identities, name) ? identities[name] : undefined;
}

/**
 * Whether a run may have a token for `name`: the identity exists now (a deleted one issues nothing more) and its
 * `identity` use admits the run's requester with the role they hold now (a removed member is admitted by nothing).
 */
export function decideIdentityToken(
  workspace: { readonly workspaceId: string; readonly identities: Readonly<Record<string, WorkloadIdentity>> },
  name: string,
  requester: LeaseRequester,
): IdentityTokenDecision {
  const identity = identityIn(workspace.identities, name);
  if (!identity) return { ok: false, code: IDENTITY_REFUSAL.NOT_FOUND, reason: `the workspace has no identity named ${name}` };
  if (!useAdmits(identity.uses.identity, requester))
    return {
      ok: false,
      code: IDENTITY_REFUSAL.USE_EXCLUDES_CALLER,
      reason: `identity ${name} allows use "identity" to ${describeAudience(identity.uses.identity)} only, which excludes ${requester.userId}`,
    };
  return { ok: true, identity, subject: tokenSubject(workspace.workspaceId, identity.subject) };
}

/** The same two definitions: redefining an identity as it is records nothing. */
export function sameDefinition(a: WorkloadIdentity | undefined, b: { subject: string; audience: string; uses: IdentityUses }): boolean {
  return a !== undefined && a.subject === b.subject && a.audience === b.audience && JSON.stringify(a.uses) === JSON.stringify(b.uses);
}
