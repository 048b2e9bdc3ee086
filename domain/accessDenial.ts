import type { DomainEvent } from './events';

/** An authenticated caller refused on a workspace route: who, what, why. Never carries what was asked for. */
export type AccessDeniedEvent = DomainEvent<'AccessDenied', { actor: string; action: string; reason: string }>;

export type RecordAccessDenied = { type: 'RecordAccessDenied'; actor: string; action: string; reason: string };

/**
 * Each denial is a stream of its own, one event long (`streams.ts`, `accessDeniedStreamId`): recording one reads
 * nothing before it. On the workspace's own stream every denial made every later workspace command fold it, so
 * anyone with a token, member or not, could slow a workspace's every command by asking for what they may not.
 */
export const accessDenialDecider = {
  initialState: (): { recorded: boolean } => ({ recorded: false }),
  evolve: (_state: { recorded: boolean }, _event: AccessDeniedEvent): { recorded: boolean } => ({ recorded: true }),
  decide: (command: RecordAccessDenied, state: { recorded: boolean }): AccessDeniedEvent[] =>
    state.recorded ? [] : [{ type: 'AccessDenied', data: { actor: command.actor, action: command.action, reason: command.reason } }],
};
