import { fold, handleCommand } from '../commandHandler';
import { RUN_ERROR, SSH_ERROR } from '../catalogue';
import { DomainError } from '../errors';
import type { HostCredentials } from '../ports/hostCredentials';
import type { SshTargets } from '../ports/sshTargets';
import type { RunEvent } from '../runEvents';
import { type RunSshCommand, type RunSshState, hasLiveSandbox, redemptionOf, refusalError, runSshDecider } from '../runSsh';
import { runStreamId } from '../streams';
import { authorize, recordDenial } from './access';
import type { ServiceDependencies } from './dependencies';
import { projectRun } from './runStream';
import type { Caller } from './workspaceStream';

/**
 * IDE SSH into a live run's sandbox (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel). A ticket names its
 * workspace and run in clear (`dps_<ws>.<run>.<random>`) so the relay finds the one stream to check it against;
 * only its SHA-256 is recorded, so the hash covers the names too and a ticket moved to another run matches nothing.
 */
export const SSH_TICKET_PREFIX = 'dps_';

export interface RunAddress {
  readonly workspaceId: string;
  readonly runId: string;
}

export interface IssuedSshTicket {
  readonly ticket: string;
  readonly ticketId: string;
  readonly expiresAt: string;
  readonly hostId: string;
  readonly hostKey?: string;
}

/** The workspace and run a ticket names, or undefined when it is not one. */
export function runOfTicket(ticket: string): RunAddress | undefined {
  if (!ticket.startsWith(SSH_TICKET_PREFIX) || ticket.length > 256) return undefined;
  const [workspaceId, runId, random] = ticket.slice(SSH_TICKET_PREFIX.length).split('.');
  if (!workspaceId || !runId || !random || !/^[A-Za-z0-9_-]{1,64}$/.test(workspaceId) || !/^[A-Za-z0-9_-]{1,64}$/.test(runId)) return undefined;
  return { workspaceId, runId };
}

function onRunSsh(deps: ServiceDependencies, address: RunAddress, command: RunSshCommand, by: Caller) {
  return handleCommand(deps, {
    workspaceId: address.workspaceId, streamId: runStreamId(address.runId), decider: runSshDecider, command,
    actor: by.actor, correlationId: by.correlationId, project: (state) => projectRun(state.run),
  });
}

async function readRunSsh(deps: ServiceDependencies, address: RunAddress): Promise<RunSshState> {
  const stream = await deps.store.readStream<RunEvent>(address.workspaceId, runStreamId(address.runId));
  return fold(runSshDecider, stream.events);
}

/** A member asks to enter a run's live sandbox: a single-use ticket for the run's host, good for one minute. */
export async function issueSshTicket(
  deps: ServiceDependencies,
  credentials: HostCredentials,
  targets: SshTargets | undefined,
  caller: Caller,
  address: RunAddress,
): Promise<IssuedSshTicket> {
  const access = { workspaceId: address.workspaceId, actor: caller.actor, action: 'runs.ssh', correlationId: caller.correlationId };
  await authorize(deps, { ...access, requires: 'member' });
  const before = await readRunSsh(deps, address);
  if (!before.run.exists) throw new DomainError(RUN_ERROR.NOT_FOUND, 'Run not found', 'not_found');
  // The session runs as the run's agent uid, so it can read what the run's own processes hold while they run (the
  // turn's model key, its gateway bearer): the requester wrote those commands and may; another member may not.
  if (before.run.requestedBy !== caller.actor) {
    await recordDenial(deps, access, 'not the run\'s requester');
    throw new DomainError(SSH_ERROR.NOT_REQUESTER, 'Only the member who requested this run may open SSH into its sandbox: a session sees what the run\'s own commands hold while they run', 'forbidden');
  }
  if (!hasLiveSandbox(before.run)) throw refusalError('run-not-live');
  const target = await targets?.targetOf(address.runId, address.workspaceId, {
    ...(before.run.sandboxId ? { sandboxId: before.run.sandboxId } : {}), ...(before.run.sandboxHostId ? { hostId: before.run.sandboxHostId } : {}),
  });
  if (!target)
    throw new DomainError(SSH_ERROR.NOT_REMOTE, 'The run\'s sandbox is not on a host agent this platform reaches: SSH rides a host agent\'s channel only (SANDBOX_HOST=remote)', 'conflict');
  const ticketId = deps.ids.next();
  const minted = credentials.mint(`${SSH_TICKET_PREFIX}${address.workspaceId}.${address.runId}.`);
  const result = await onRunSsh(deps, address, { type: 'IssueSshTicket', ticketId, ticketHash: minted.hash, hostId: target.hostId, now: deps.clock.now().toISOString() }, caller);
  const ticket = result.state.tickets[ticketId];
  return { ticket: minted.value, ticketId, expiresAt: ticket?.expiresAt ?? '', hostId: target.hostId, ...(target.hostKey ? { hostKey: target.hostKey } : {}) };
}

/**
 * The relay redeems a presented ticket, once: the session is recorded as opened in the name of whom it was issued
 * to, or the refusal (unknown, reused, expired, run no longer live) is recorded on the run and thrown.
 */
export async function redeemSshTicket(
  deps: ServiceDependencies,
  credentials: HostCredentials,
  ticket: string,
): Promise<RunAddress & { sessionId: string; actor: string; ticketId: string }> {
  const address = runOfTicket(ticket);
  if (!address) throw refusalError('unknown-ticket');
  const sessionId = deps.ids.next();
  const relay: Caller = { actor: 'ssh-relay', correlationId: `ssh:${sessionId}` };
  // Decided twice over the same stream: first to learn whose ticket it is (the session is opened in their name),
  // then for real with that actor; a redemption racing this one makes the second decision see it as reused.
  const seen = await readRunSsh(deps, address);
  const presentedHash = credentials.hash(ticket);
  const holder = Object.values(seen.tickets).find((t) => t.ticketHash === presentedHash)?.issuedTo;
  const by: Caller = holder ? { actor: holder, correlationId: relay.correlationId } : relay;
  // Still a member now: one removed in the ticket's minute opens nothing (404, and the denial is recorded).
  if (holder) await authorize(deps, { workspaceId: address.workspaceId, actor: holder, action: 'runs.ssh', requires: 'member', correlationId: relay.correlationId });
  const now = deps.clock.now().toISOString();
  const result = await onRunSsh(deps, address, { type: 'RedeemSshTicket', presentedHash, sessionId, now }, by);
  const outcome = result.records[0];
  if (outcome?.type === 'SshSessionOpened') return { ...address, sessionId, actor: by.actor, ticketId: outcome.data.ticketId };
  // Refused: recorded, or past the run's recording cap and only answered.
  throw refusalError(outcome?.type === 'SshSessionRefused' ? outcome.data.reason : (redemptionOf(result.state, presentedHash, now).reason ?? 'unknown-ticket'));
}

/** The session ended (the client left, the run was torn down, the host went away): recorded once. */
export async function recordSshSessionClosed(deps: ServiceDependencies, session: RunAddress & { sessionId: string; actor: string }, reason: string): Promise<void> {
  await onRunSsh(deps, session, { type: 'CloseSshSession', sessionId: session.sessionId, reason: reason.slice(0, 200) }, { actor: session.actor, correlationId: `ssh:${session.sessionId}` });
}
