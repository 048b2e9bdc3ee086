import type { GatewayBinding } from '../ports/gatewayBearers';
import type { WorkloadIdentityTokens } from '../ports/workloadIdentityTokens';
import type { ServiceDependencies } from './dependencies';
import { onRun, readRunStream } from './runStream';
import { readWorkspace } from './workspaceStream';
import { IDENTITY_REFUSAL, decideIdentityToken } from '../workloadIdentity';
import { roleOf } from '../workspace';
import { IDENTITY_ERROR } from '../catalogue';
import { DomainError } from '../errors';

/** What the agent gets back: the token and what it says, so it needs not decode it. */
export interface IdentityTokenResponse {
  readonly ok: true;
  readonly identity: string;
  readonly token: string;
  readonly tokenType: 'urn:ietf:params:oauth:token-type:jwt';
  readonly issuer: string;
  readonly subject: string;
  readonly audience: string;
  readonly expiresAt: string;
}

const ACTOR = 'system:gateway';
export const IDENTITY_TOKEN_KIND = 'identity-token';

/**
 * `{"kind": "identity-token", "identity": <name>}` at the gateway (docs/identity.md). Decided from the workspace's and
 * the run's own streams: the identity as defined now (a deleted one is refused), its `identity` use against the run's
 * requester with the role they hold now. Each token issued is one `IdentityTokenIssued` on the run's stream, recorded
 * before the token is returned (a token whose record failed is dropped); each refusal an `OperationRefused`.
 */
export async function issueIdentityToken(
  d: { readonly deps: Pick<ServiceDependencies, 'store' | 'clock' | 'random' | 'ids'>; readonly tokens: WorkloadIdentityTokens | undefined },
  binding: GatewayBinding,
  live: { readonly deadline: string },
  name: string,
  correlationId: string,
): Promise<IdentityTokenResponse> {
  const by = { actor: ACTOR, correlationId };
  const target = `identity:${name}`;
  const refuse = async (reason: string, problem: DomainError): Promise<never> => {
    await onRun(d.deps, binding.workspaceId, binding.runId, { type: 'RecordOperationRefused', operationId: d.deps.ids.next(), kind: IDENTITY_TOKEN_KIND, target, reason }, by);
    throw problem;
  };
  if (!d.tokens) throw new DomainError(IDENTITY_ERROR.ISSUER_UNAVAILABLE, 'This platform issues no workload identity tokens', 'unavailable');
  const [workspace, run] = await Promise.all([readWorkspace(d.deps.store, binding.workspaceId), readRunStream(d.deps.store, binding.workspaceId, binding.runId)]);
  const requestedBy = run.state.requestedBy ?? '';
  const decision = decideIdentityToken(
    { workspaceId: binding.workspaceId, identities: workspace.identities ?? {} },
    name,
    { userId: requestedBy, role: roleOf(workspace, requestedBy) },
  );
  if (!decision.ok)
    return refuse(`${decision.code}: ${decision.reason}`.slice(0, 300), new DomainError(decision.code, decision.reason, decision.code === IDENTITY_REFUSAL.NOT_FOUND ? 'not_found' : 'forbidden'));
  const notAfter = new Date(Math.min(Date.parse(live.deadline), Date.parse(binding.expiresAt), Date.parse(run.state.deadline))).toISOString();
  const issued = await d.tokens.issue({
    workspaceId: binding.workspaceId, runId: binding.runId, identity: name, subject: decision.subject, audience: decision.identity.audience, notAfter,
  });
  await onRun(d.deps, binding.workspaceId, binding.runId, {
    type: 'RecordIdentityTokenIssued', identity: name, subject: decision.subject, audience: decision.identity.audience, jti: issued.jti, kid: issued.kid, expiresAt: issued.expiresAt,
  }, by);
  return {
    ok: true, identity: name, token: issued.token, tokenType: 'urn:ietf:params:oauth:token-type:jwt', issuer: issued.issuer,
    subject: decision.subject, audience: decision.identity.audience, expiresAt: issued.expiresAt,
  };
}
