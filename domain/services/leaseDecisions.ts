import { DomainError } from '../errors';
import type { EventStore } from '../ports/eventStore';
import type { SecretState } from '../secret';
import type { GrantOf, RefusalOf } from '../decision';
import { type LeaseAsk, type LeaseDecision, type LeaseRequester, decideLease } from '../secretPolicy';
import { roleIn } from '../workspace';
import { readSecret } from './secretStream';
import { readWorkspace } from './workspaceStream';

/**
 * The lease decision against the log itself: the secret's uses and the requester's role are folded from their
 * hash-chained streams, not read from projection rows a writer to the table could have edited.
 */

/** A lease the secret's use policy (or the phase's table) refuses: names the secret and the use, never a value. */
export class LeaseRefused extends DomainError {
  constructor(
    readonly refusal: RefusalOf<LeaseDecision>,
    readonly secretName: string,
    readonly where: string,
  ) {
    super(refusal.code, `${where}: ${refusal.reason}`, 'invalid');
    this.name = 'LeaseRefused';
  }
}

/** The gateway reads the secret it decides on from here, beside `requesterIn`. */
export { readSecret };

export async function requesterIn(store: EventStore, workspaceId: string, userId: string): Promise<LeaseRequester> {
  const workspace = await readWorkspace(store, workspaceId);
  return { userId, role: workspace.status === 'Active' ? roleIn(workspace.members, userId) : undefined };
}

export type GrantedLease = GrantOf<LeaseDecision>;

/** Decides each ask in order; the first refusal throws `LeaseRefused`. Returns the grants, one per ask, otherwise. */
export async function assertLeases(
  store: EventStore,
  workspaceId: string,
  requester: LeaseRequester,
  asks: readonly (LeaseAsk & { readonly where: string })[],
): Promise<GrantedLease[]> {
  const secrets = new Map<string, SecretState>();
  const decisions: GrantedLease[] = [];
  for (const ask of asks) {
    let secret = secrets.get(ask.secretName);
    if (!secret) {
      secret = await readSecret(store, workspaceId, ask.secretName);
      secrets.set(ask.secretName, secret);
    }
    const decision = decideLease(ask, secret, requester);
    if (!decision.ok) throw new LeaseRefused(decision, ask.secretName, ask.where);
    decisions.push(decision);
  }
  return decisions;
}
