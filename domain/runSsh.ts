import { RUN_ERROR, SSH_ERROR, SSH_TICKET_SECONDS } from './catalogue';
import { DomainError, assertNever } from './errors';
import type { RunEvent, SshRefusal } from './runEvents';
import { type RunState, evolveRun, initialRunState, isFinished } from './runState';

/**
 * IDE SSH into a run's sandbox (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel), decided over the run's own
 * stream: a ticket is issued only while the run has a sandbox, redeemed at most once and within its minute, and
 * every redemption, refusal and close is an event on the run. Only a ticket's SHA-256 is ever recorded.
 */
export interface SshTicket {
  readonly ticketHash: string;
  readonly expiresAt: string;
  /** Who asked for it: the session is opened in their name. */
  readonly issuedTo: string;
  readonly redeemed: boolean;
}

export interface RunSshState {
  readonly run: RunState;
  readonly tickets: Readonly<Record<string, SshTicket>>;
  /** Open sessions by id, with the actor they were opened for. */
  readonly sessions: Readonly<Record<string, { readonly actor: string }>>;
  readonly refusalsRecorded: number;
}

/**
 * Refused presentations recorded per run: anyone who knows a run's id can present a made-up ticket, so past this
 * many the refusals are still answered but no longer appended (the stream cannot be grown without a ticket).
 */
export const MAX_RECORDED_SSH_REFUSALS = 50;

export type RunSshCommand =
  | { type: 'IssueSshTicket'; ticketId: string; ticketHash: string; hostId: string; now: string }
  | { type: 'RedeemSshTicket'; presentedHash: string; sessionId: string; now: string }
  | { type: 'CloseSshSession'; sessionId: string; reason: string };

/** A run has a sandbox someone may enter between its launch and its teardown, while it has no outcome. */
export const hasLiveSandbox = (run: RunState): boolean => run.exists && run.sandboxId !== undefined && !run.tornDown && !isFinished(run);

type Recorded = RunEvent & { meta?: { actor: string } };

function evolve(state: RunSshState, event: Recorded): RunSshState {
  const run = evolveRun(state.run, event);
  switch (event.type) {
    case 'SshTicketIssued':
      return { ...state, run, tickets: { ...state.tickets, [event.data.ticketId]: { ticketHash: event.data.ticketHash, expiresAt: event.data.expiresAt, issuedTo: event.meta?.actor ?? '', redeemed: false } } };
    case 'SshSessionOpened': {
      const ticket = state.tickets[event.data.ticketId];
      return {
        ...state, run,
        tickets: ticket ? { ...state.tickets, [event.data.ticketId]: { ...ticket, redeemed: true } } : state.tickets,
        sessions: { ...state.sessions, [event.data.sessionId]: { actor: event.meta?.actor ?? '' } },
      };
    }
    case 'SshSessionClosed': {
      const { [event.data.sessionId]: _closed, ...open } = state.sessions;
      return { ...state, run, sessions: open };
    }
    case 'SshSessionRefused':
      return { ...state, run, refusalsRecorded: state.refusalsRecorded + 1 };
    default:
      return { ...state, run };
  }
}

function decide(command: RunSshCommand, state: RunSshState): RunEvent[] {
  switch (command.type) {
    case 'IssueSshTicket': {
      if (!state.run.exists) throw new DomainError(RUN_ERROR.NOT_FOUND, 'Run not found', 'not_found');
      if (!hasLiveSandbox(state.run)) throw notLive();
      const expiresAt = new Date(Date.parse(command.now) + SSH_TICKET_SECONDS * 1000).toISOString();
      return [{ type: 'SshTicketIssued', data: { ticketId: command.ticketId, ticketHash: command.ticketHash, hostId: command.hostId, expiresAt } }];
    }
    case 'RedeemSshTicket': {
      // A ticket naming a run that does not exist has nowhere to be recorded; the caller answers it like any unknown one.
      if (!state.run.exists) throw new DomainError(SSH_ERROR.TICKET_INVALID, 'The SSH ticket is not valid', 'forbidden');
      const { ticketId, reason } = redemptionOf(state, command.presentedHash, command.now);
      if (reason === undefined && ticketId !== undefined) return [{ type: 'SshSessionOpened', data: { sessionId: command.sessionId, ticketId } }];
      if (state.refusalsRecorded >= MAX_RECORDED_SSH_REFUSALS) return [];
      return [{ type: 'SshSessionRefused', data: { reason: reason ?? 'unknown-ticket', ...(ticketId ? { ticketId } : {}) } }];
    }
    case 'CloseSshSession':
      return state.sessions[command.sessionId] ? [{ type: 'SshSessionClosed', data: { sessionId: command.sessionId, reason: command.reason } }] : [];
    default:
      return assertNever(command, 'ssh command');
  }
}

/** What presenting a ticket (by its hash) at `now` would do: open a session, or be refused for a reason. */
export function redemptionOf(state: RunSshState, presentedHash: string, now: string): { ticketId?: string; reason?: SshRefusal } {
  const found = Object.entries(state.tickets).find(([, ticket]) => ticket.ticketHash === presentedHash);
  if (!found) return { reason: 'unknown-ticket' };
  const [ticketId, ticket] = found;
  if (ticket.redeemed) return { ticketId, reason: 'reused' };
  if (Date.parse(now) >= Date.parse(ticket.expiresAt)) return { ticketId, reason: 'expired' };
  if (!hasLiveSandbox(state.run)) return { ticketId, reason: 'run-not-live' };
  return { ticketId };
}

const notLive = (): DomainError =>
  new DomainError(SSH_ERROR.RUN_NOT_LIVE, 'The run has no live sandbox to enter (it is not seeded yet, or it was torn down)', 'conflict');

export const runSshDecider = {
  initialState: (): RunSshState => ({ run: initialRunState(), tickets: {}, sessions: {}, refusalsRecorded: 0 }),
  evolve,
  decide,
};

/** What a refused redemption answers: the code a proxy shows its user. */
export function refusalError(reason: SshRefusal): DomainError {
  switch (reason) {
    case 'unknown-ticket':
      return new DomainError(SSH_ERROR.TICKET_INVALID, 'The SSH ticket is not valid', 'forbidden');
    case 'reused':
      return new DomainError(SSH_ERROR.TICKET_USED, 'The SSH ticket was already used: ask for a new one', 'forbidden');
    case 'expired':
      return new DomainError(SSH_ERROR.TICKET_EXPIRED, 'The SSH ticket expired before it was used: ask for a new one', 'forbidden');
    case 'run-not-live':
      return notLive();
    default:
      return assertNever(reason, 'ssh refusal');
  }
}
