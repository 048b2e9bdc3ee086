import { describe, expect, it } from 'vitest';
import { type SandboxHostEvent, credentialAccepted, sandboxHostDecider, sandboxHostView } from '../../domain/sandboxHosts';
import { specFor } from '../support/decider';

const spec = specFor(sandboxHostDecider);
const now = '2026-01-01T00:00:00.000Z';
const offered: SandboxHostEvent = { type: 'HostEnrolmentOffered', data: { hostId: 'h1', name: 'build-box', tokenHash: 'T', expiresAt: '2026-01-01T00:15:00.000Z' } };
const enrolled: SandboxHostEvent = { type: 'HostEnrolled', data: { hostId: 'h1', credentialHash: 'C1' } };
const rotated: SandboxHostEvent = { type: 'HostCredentialRotated', data: { hostId: 'h1', credentialHash: 'C2' } };
const revoked: SandboxHostEvent = { type: 'HostRevoked', data: { hostId: 'h1', reason: 'revoked by alice' } };

describe('sandbox host decisions', () => {
  it('an offer expires 15 minutes after it is made; names are checked', () => {
    spec.given([]).when({ type: 'OfferEnrolment', hostId: 'h1', name: 'build-box', tokenHash: 'T', now }).then([offered]);
    spec.given([]).when({ type: 'OfferEnrolment', hostId: 'h1', name: '../x', tokenHash: 'T', now }).thenThrows('HOST.INVALID_NAME');
    spec.given([offered]).when({ type: 'OfferEnrolment', hostId: 'h1', name: 'again', tokenHash: 'U', now }).thenThrows('HOST.ALREADY_ENROLLED');
  });
  it('the token is exchanged once, before it expires, for a credential recorded only as its hash', () => {
    spec.given([offered]).when({ type: 'Enrol', tokenHash: 'T', credentialHash: 'C1', now }).then([enrolled]);
    spec.given([offered, enrolled]).when({ type: 'Enrol', tokenHash: 'T', credentialHash: 'C9', now }).thenThrows('HOST.ENROLMENT_INVALID');
    spec.given([offered]).when({ type: 'Enrol', tokenHash: 'wrong', credentialHash: 'C1', now }).thenThrows('HOST.ENROLMENT_INVALID');
    spec.given([offered]).when({ type: 'Enrol', tokenHash: 'T', credentialHash: 'C1', now: '2026-01-01T00:15:00.000Z' }).thenThrows('HOST.ENROLMENT_EXPIRED');
    spec.given([offered, enrolled]).thenState((s) => expect(s.tokenHash).toBeUndefined());
  });
  it('rotation needs the current credential and retires it', () => {
    spec.given([offered, enrolled]).when({ type: 'RotateCredential', presentedHash: 'C1', credentialHash: 'C2' }).then([rotated]);
    spec.given([offered, enrolled]).when({ type: 'RotateCredential', presentedHash: 'forged', credentialHash: 'C2' }).thenThrows('HOST.CREDENTIAL_INVALID');
    spec.given([offered, enrolled, rotated]).thenState((s) => {
      expect(credentialAccepted(s, 'C1')).toBe(false);
      expect(credentialAccepted(s, 'C2')).toBe(true);
    });
  });
  it('a revoked host has no credential: it cannot connect or rotate; revoking twice changes nothing', () => {
    spec.given([offered, enrolled]).when({ type: 'RevokeHost', reason: 'revoked by alice' }).then([revoked]);
    spec.given([offered, enrolled, revoked]).when({ type: 'RevokeHost', reason: 'again' }).then([]);
    spec.given([offered, enrolled, revoked]).when({ type: 'RecordConnected', presentedHash: 'C1' }).thenThrows('HOST.REVOKED');
    spec.given([offered, enrolled, revoked]).when({ type: 'RotateCredential', presentedHash: 'C1', credentialHash: 'C3' }).thenThrows('HOST.REVOKED');
    spec.given([offered, enrolled, revoked]).thenState((s) => expect(credentialAccepted(s, 'C1')).toBe(false));
    spec.given([offered, revoked]).when({ type: 'Enrol', tokenHash: 'T', credentialHash: 'C1', now }).thenThrows('HOST.ENROLMENT_INVALID');
  });
  it('connections and refused messages are recorded; an unknown host is not found', () => {
    spec.given([offered, enrolled]).when({ type: 'RecordConnected', presentedHash: 'C1' }).then([{ type: 'HostConnected', data: { hostId: 'h1' } }]);
    spec.given([offered, enrolled]).when({ type: 'RecordMessageRefused', reason: 'replayed', messageType: 'exited', runId: 'r1' })
      .then([{ type: 'HostMessageRefused', data: { hostId: 'h1', reason: 'replayed', messageType: 'exited', runId: 'r1' } }]);
    spec.given([]).when({ type: 'RevokeHost', reason: 'x' }).thenThrows('HOST.NOT_FOUND');
    spec.given([]).when({ type: 'RecordConnected', presentedHash: 'C1' }).thenThrows('HOST.NOT_FOUND');
  });
  it('a connection adds at most 50 refusal records; connecting again allows 50 more', () => {
    const refused: SandboxHostEvent = { type: 'HostMessageRefused', data: { hostId: 'h1', reason: 'malformed', messageType: 'unknown' } };
    const connected: SandboxHostEvent = { type: 'HostConnected', data: { hostId: 'h1' } };
    const flood = Array.from({ length: 50 }, () => refused);
    const refuse = { type: 'RecordMessageRefused', reason: 'malformed', messageType: 'unknown' } as const;
    spec.given([offered, enrolled, connected, ...flood.slice(1)]).when(refuse).then([refused]);
    spec.given([offered, enrolled, connected, ...flood]).when(refuse).then([]);
    spec.given([offered, enrolled, connected, ...flood, connected]).when(refuse).then([refused]);
  });
  it('the listing never shows a hash, and its last-seen time is the later of the log and the live channel', () => {
    const state = [offered, enrolled].reduce((s, e) => sandboxHostDecider.evolve(s, e), sandboxHostDecider.initialState());
    const view = sandboxHostView({ ...state, lastConnectedAt: '2026-01-01T00:01:00.000Z' }, '2026-01-01T00:05:00.000Z');
    expect(view).toEqual({ hostId: 'h1', name: 'build-box', status: 'Enrolled', lastSeenAt: '2026-01-01T00:05:00.000Z' });
    expect(JSON.stringify(view)).not.toMatch(/C1|"T"/);
  });
});
