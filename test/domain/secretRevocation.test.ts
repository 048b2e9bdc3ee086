import { describe, expect, it } from 'vitest';
import { runDecider, type RunEvent } from '../../domain/run';
import { assertNotRevoked, evolveSecret, initialSecretState, isRevokedVersion, secretDecider, type SecretEvent } from '../../domain/secret';
import { DEFAULT_SECRET_USES } from '../../domain/secretPolicy';
import { specFor } from '../support/decider';

const secrets = specFor(secretDecider);
const runs = specFor(runDecider);
const uses = DEFAULT_SECRET_USES;
const setV = (version: number): SecretEvent => ({ type: 'SecretSet', data: { name: 'API_KEY', version, allowedHosts: [], uses } });
const revokedThrough = (v: number): SecretEvent => ({ type: 'SecretRevoked', data: { name: 'API_KEY', revokedThrough: v } });
const deletedV = (version: number): SecretEvent => ({ type: 'SecretDeleted', data: { name: 'API_KEY', version } });

describe('rotate vs revoke: the secret decisions', () => {
  it('a plain rotation revokes nothing; with revoke it revokes every earlier version before the new one exists', () => {
    secrets.given([setV(1)]).when({ type: 'SetSecret', name: 'API_KEY' }).then([setV(2)]);
    secrets.given([setV(1)]).when({ type: 'SetSecret', name: 'API_KEY', revoke: true }).then([revokedThrough(1), setV(2)]);
    // Nothing earlier to revoke: the first set is a set.
    secrets.given([]).when({ type: 'SetSecret', name: 'API_KEY', revoke: true }).then([setV(1)]);
  });

  it('revoke without a value deletes the current one; a deleted version can still be revoked; repeating changes nothing', () => {
    secrets.given([setV(1)]).when({ type: 'RevokeSecret', name: 'API_KEY' }).then([revokedThrough(1), deletedV(1)]);
    secrets.given([setV(1), deletedV(1)]).when({ type: 'RevokeSecret', name: 'API_KEY' }).then([revokedThrough(1)]);
    secrets.given([setV(1), revokedThrough(1), deletedV(1)]).when({ type: 'RevokeSecret', name: 'API_KEY' }).then([]);
    secrets.given([]).when({ type: 'RevokeSecret', name: 'API_KEY' }).thenThrows('SECRET.NOT_FOUND');
  });

  it('the revoked versions fold from the log and never shrink; the check names version and secret, never a value', () => {
    const state = [setV(1), revokedThrough(1), setV(2), setV(3), revokedThrough(1)].reduce(evolveSecret, initialSecretState());
    expect(state.revokedThrough).toBe(1);
    expect([1, 2, 3].map((v) => isRevokedVersion(state, v))).toEqual([true, false, false]);
    expect(() => assertNotRevoked(state, 'API_KEY', 1)).toThrow(expect.objectContaining({ code: 'SECRET.VERSION_REVOKED', message: expect.stringContaining('Version 1 of API_KEY') }));
    expect(() => assertNotRevoked(state, 'API_KEY', 2)).not.toThrow();
  });
});

describe('rotate vs revoke: the run decisions', () => {
  const requested: RunEvent = { type: 'RunRequested', data: { runId: 'r1', workspaceId: 'ws1', deadline: '2026-01-01T01:00:00.000Z', specRef: 's', specDigest: 'd' } };
  const granted = (leaseId: string, secretName: string, secretVersion: number): RunEvent => ({
    type: 'LeaseGranted', data: { leaseId, secretName, secretVersion, operation: 'mcp:x', channel: 'process-env', expiresAt: '2026-01-01T00:30:00.000Z' },
  });

  it('ends exactly the live leases of the revoked versions of that secret, with lease, run, secret and version', () => {
    const given = [requested, granted('l1', 'API_KEY', 1), granted('l2', 'API_KEY', 2), granted('l3', 'OTHER', 1), { type: 'LeaseReleased', data: { leaseId: 'l2' } } as RunEvent];
    runs.given(given).when({ type: 'RevokeLeases', secretName: 'API_KEY', revokedThrough: 2 })
      .then([{ type: 'LeaseRevoked', data: { leaseId: 'l1', runId: 'r1', secretName: 'API_KEY', secretVersion: 1 } }]);
    runs.given([requested, granted('l1', 'API_KEY', 2)]).when({ type: 'RevokeLeases', secretName: 'API_KEY', revokedThrough: 1 }).then([]);
  });

  it('a revoked lease is no longer live, so a second revocation or a release records nothing', () => {
    const revoked: RunEvent = { type: 'LeaseRevoked', data: { leaseId: 'l1', runId: 'r1', secretName: 'API_KEY', secretVersion: 1 } };
    runs.given([requested, granted('l1', 'API_KEY', 1), revoked]).when({ type: 'RevokeLeases', secretName: 'API_KEY', revokedThrough: 1 }).then([]);
    runs.given([requested, granted('l1', 'API_KEY', 1), revoked]).when({ type: 'ReleaseLease', leaseId: 'l1' }).then([]);
  });
});
