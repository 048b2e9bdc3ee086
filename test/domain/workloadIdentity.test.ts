import { describe, expect, it } from 'vitest';
import { runDecider, type RunEvent } from '../../domain/run';
import { IDENTITY_REFUSAL, decideIdentityToken, tokenSubject } from '../../domain/workloadIdentity';
import { type WorkspaceEvent, type WorkspaceState, roleOf, workspaceDecider } from '../../domain/workspace';
import { specFor } from '../support/decider';

const spec = specFor(workspaceDecider);
const created: WorkspaceEvent = { type: 'WorkspaceCreated', data: { workspaceId: 'ws1', name: 'Acme', owner: 'alice' } };
const bob: WorkspaceEvent = { type: 'MemberAdded', data: { userId: 'bob', role: 'member' } };
const deployer = { subject: 'deploy:prod', audience: 'api://AzureADTokenExchange', uses: { identity: 'owners' as const } };
const defined: WorkspaceEvent = { type: 'IdentityDefined', data: { name: 'deployer', ...deployer } };
const stamped = (e: WorkspaceEvent, actor = 'alice') => ({ ...e, meta: { at: '2030-01-01T00:00:00.000Z', actor, correlationId: 'c' } });

function folded(events: readonly WorkspaceEvent[]): WorkspaceState {
  return events.map((e) => stamped(e)).reduce((s, e) => workspaceDecider.evolve(s, e), workspaceDecider.initialState());
}
const requester = (state: WorkspaceState, userId: string) => ({ userId, role: roleOf(state, userId) });

describe('workspace identities', () => {
  it('an owner defines one; the same definition again records nothing; a change is a new IdentityDefined', () => {
    spec.given([created]).when({ type: 'DefineIdentity', actor: 'alice', name: 'deployer', ...deployer }).then([defined]);
    spec.given([created, defined]).when({ type: 'DefineIdentity', actor: 'alice', name: 'deployer', ...deployer }).then([]);
    spec.given([created, defined]).when({ type: 'DefineIdentity', actor: 'alice', name: 'deployer', ...deployer, uses: { identity: 'members' } })
      .then([{ type: 'IdentityDefined', data: { name: 'deployer', ...deployer, uses: { identity: 'members' } } }]);
  });

  it('a member may not define or delete one (403); an outsider does not see the workspace (404)', () => {
    spec.given([created, bob]).when({ type: 'DefineIdentity', actor: 'bob', name: 'deployer', ...deployer }).thenThrows('WORKSPACE.OWNER_REQUIRED');
    spec.given([created, bob, defined]).when({ type: 'DeleteIdentity', actor: 'bob', name: 'deployer' }).thenThrows('WORKSPACE.OWNER_REQUIRED');
    spec.given([created]).when({ type: 'DefineIdentity', actor: 'mallory', name: 'deployer', ...deployer }).thenThrows('WORKSPACE.NOT_FOUND');
  });

  it('deleting one that does not exist (or a prototype key) is not found', () => {
    spec.given([created]).when({ type: 'DeleteIdentity', actor: 'alice', name: 'deployer' }).thenThrows('IDENTITY.NOT_FOUND');
    spec.given([created]).when({ type: 'DeleteIdentity', actor: 'alice', name: 'constructor' }).thenThrows('IDENTITY.NOT_FOUND');
  });

  it('folds the definition with who set it and when; a deletion removes it', () => {
    const state = folded([created, defined]);
    expect(state.identities?.deployer).toEqual({ name: 'deployer', ...deployer, updatedAt: '2030-01-01T00:00:00.000Z', updatedBy: 'alice' });
    expect(folded([created, defined, { type: 'IdentityDeleted', data: { name: 'deployer' } }]).identities).toEqual({});
  });
});

describe('a token for a run', () => {
  it('names the owner subject under the workspace, so no workspace can mint another one\'s subject', () => {
    const state = folded([created, defined]);
    expect(decideIdentityToken({ workspaceId: 'ws1', identities: state.identities ?? {} }, 'deployer', requester(state, 'alice')))
      .toMatchObject({ ok: true, subject: 'workspace:ws1:deploy:prod' });
    expect(tokenSubject('ws2', 'deploy:prod')).not.toBe(tokenSubject('ws1', 'deploy:prod'));
  });

  it('refuses a requester the identity use excludes, and one no longer a member', () => {
    const state = folded([created, bob, defined]);
    const identities = state.identities ?? {};
    expect(decideIdentityToken({ workspaceId: 'ws1', identities }, 'deployer', requester(state, 'bob')))
      .toMatchObject({ ok: false, code: IDENTITY_REFUSAL.USE_EXCLUDES_CALLER });
    const named = folded([created, bob, { type: 'IdentityDefined', data: { name: 'deployer', ...deployer, uses: { identity: ['bob'] } } }]);
    expect(decideIdentityToken({ workspaceId: 'ws1', identities: named.identities ?? {} }, 'deployer', requester(named, 'bob'))).toMatchObject({ ok: true });
    expect(decideIdentityToken({ workspaceId: 'ws1', identities: named.identities ?? {} }, 'deployer', requester(named, 'alice')))
      .toMatchObject({ ok: false, code: IDENTITY_REFUSAL.USE_EXCLUDES_CALLER });
    const left = folded([created, bob, { type: 'IdentityDefined', data: { name: 'deployer', ...deployer, uses: { identity: 'members' } } }, { type: 'MemberRemoved', data: { userId: 'bob' } }]);
    expect(decideIdentityToken({ workspaceId: 'ws1', identities: left.identities ?? {} }, 'deployer', requester(left, 'bob')))
      .toMatchObject({ ok: false, code: IDENTITY_REFUSAL.USE_EXCLUDES_CALLER });
  });

  it('refuses a deleted identity and a prototype key', () => {
    const state = folded([created, defined, { type: 'IdentityDeleted', data: { name: 'deployer' } }]);
    for (const name of ['deployer', 'constructor', '__proto__'])
      expect(decideIdentityToken({ workspaceId: 'ws1', identities: state.identities ?? {} }, name, requester(state, 'alice')))
        .toMatchObject({ ok: false, code: IDENTITY_REFUSAL.NOT_FOUND });
  });

  it('is recorded on an open run only, never beyond its deadline', () => {
    const runSpec = specFor(runDecider);
    const requested: RunEvent = { type: 'RunRequested', data: { runId: 'r1', workspaceId: 'ws1', deadline: '2030-01-01T01:00:00.000Z', specRef: 's', specDigest: 'd' } };
    const issue = { type: 'RecordIdentityTokenIssued' as const, identity: 'deployer', subject: 'workspace:ws1:deploy:prod', audience: 'api://AzureADTokenExchange', jti: 'j', kid: 'k', expiresAt: '2030-01-01T00:10:00.000Z' };
    const { type: _command, ...data } = issue;
    runSpec.given([requested]).when(issue).then([{ type: 'IdentityTokenIssued', data }]);
    runSpec.given([requested]).when({ ...issue, expiresAt: '2030-01-01T01:00:01.000Z' }).thenThrows('IDENTITY.BEYOND_DEADLINE');
    runSpec.given([requested, { type: 'RunCancellationRequested', data: { reason: 'x' } }]).when(issue).thenThrows('RUN.CANCELLED');
    runSpec.given([]).when(issue).thenThrows('RUN.NOT_FOUND');
  });
});
