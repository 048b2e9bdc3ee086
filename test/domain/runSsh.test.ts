import { describe, expect, it } from 'vitest';
import type { RunEvent } from '../../domain/run';
import { MAX_RECORDED_SSH_REFUSALS, runSshDecider } from '../../domain/runSsh';
import { specFor } from '../support/decider';

const spec = specFor(runSshDecider);
const T0 = '2026-01-01T00:00:00.000Z';
const at = (seconds: number): string => new Date(Date.parse(T0) + seconds * 1000).toISOString();
const requested: RunEvent = { type: 'RunRequested', data: { runId: 'r1', workspaceId: 'ws1', deadline: at(3600), specRef: 's', specDigest: 'd' } };
const live: RunEvent[] = [requested, { type: 'PhaseStarted', data: { phase: 'seed' } }, { type: 'SandboxLaunched', data: { sandboxId: 'sb1', isolated: true } }];
const issued: RunEvent = { type: 'SshTicketIssued', data: { ticketId: 't1', ticketHash: 'h1', hostId: 'host1', expiresAt: at(60) } };
const opened: RunEvent = { type: 'SshSessionOpened', data: { sessionId: 's1', ticketId: 't1' } };
const redeem = (now: string, presentedHash = 'h1') => ({ type: 'RedeemSshTicket' as const, presentedHash, sessionId: 's1', now });

describe('IDE SSH decisions on a run', () => {
  it('issues a ticket good for sixty seconds only while the run has a sandbox', () => {
    spec.given(live).when({ type: 'IssueSshTicket', ticketId: 't1', ticketHash: 'h1', hostId: 'host1', now: T0 }).then([issued]);
    spec.given([requested]).when({ type: 'IssueSshTicket', ticketId: 't1', ticketHash: 'h1', hostId: 'host1', now: T0 }).thenThrows('SSH.RUN_NOT_LIVE');
    spec.given([...live, { type: 'SandboxTornDown', data: { sandboxId: 'sb1' } }]).when({ type: 'IssueSshTicket', ticketId: 't1', ticketHash: 'h1', hostId: 'host1', now: T0 }).thenThrows('SSH.RUN_NOT_LIVE');
    spec.given([]).when({ type: 'IssueSshTicket', ticketId: 't1', ticketHash: 'h1', hostId: 'host1', now: T0 }).thenThrows('RUN.NOT_FOUND');
  });

  it('opens a session once, and records every other presentation as a refusal', () => {
    spec.given([...live, issued]).when(redeem(at(59))).then([opened]);
    spec.given([...live, issued, opened]).when(redeem(at(1))).then([{ type: 'SshSessionRefused', data: { reason: 'reused', ticketId: 't1' } }]);
    spec.given([...live, issued]).when(redeem(at(60))).then([{ type: 'SshSessionRefused', data: { reason: 'expired', ticketId: 't1' } }]);
    spec.given([...live, issued]).when(redeem(at(1), 'other')).then([{ type: 'SshSessionRefused', data: { reason: 'unknown-ticket' } }]);
    spec.given([...live, issued, { type: 'SandboxTornDown', data: { sandboxId: 'sb1' } }]).when(redeem(at(1))).then([{ type: 'SshSessionRefused', data: { reason: 'run-not-live', ticketId: 't1' } }]);
    spec.given([]).when(redeem(at(1))).thenThrows('SSH.TICKET_INVALID');
  });

  it('stops recording refusals past a cap per run (made-up tickets cannot grow the stream) but still refuses', () => {
    const refusals: RunEvent[] = Array.from({ length: MAX_RECORDED_SSH_REFUSALS }, () => ({ type: 'SshSessionRefused', data: { reason: 'unknown-ticket' } }));
    spec.given([...live, issued, ...refusals]).when(redeem(at(1), 'made-up')).then([]);
    spec.given([...live, issued, ...refusals]).when(redeem(at(1))).then([opened]);
  });

  it('records a session\'s close once', () => {
    spec.given([...live, issued, opened]).when({ type: 'CloseSshSession', sessionId: 's1', reason: 'the client disconnected' }).then([{ type: 'SshSessionClosed', data: { sessionId: 's1', reason: 'the client disconnected' } }]);
    spec.given([...live, issued, opened, { type: 'SshSessionClosed', data: { sessionId: 's1', reason: 'x' } }]).when({ type: 'CloseSshSession', sessionId: 's1', reason: 'again' }).then([]);
    spec.given([...live, issued, opened]).thenState((state) => expect(state.run.sandboxId).toBe('sb1'));
  });
});
