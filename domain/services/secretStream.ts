import { type CommandContext, type CommandResult, fold, handleCommand } from '../commandHandler';
import type { EventStore, ProjectionWrite } from '../ports/eventStore';
import { type SecretCommand, type SecretEvent, type SecretState, secretDecider, secretMetadata } from '../secret';
import { projectionKeys, secretStreamId } from '../streams';
import type { Caller } from './workspaceStream';

export const projectSecret = (state: SecretState): readonly ProjectionWrite[] => [
  { kind: 'upsert', key: projectionKeys.secret(state.name), value: secretMetadata(state) },
];

/**
 * Records one command on a secret's stream and rewrites its metadata projection with it.
 * `beforeAppend`: the vault write (or delete) the event announces; it runs again on a retry.
 */
export function onSecret(
  deps: CommandContext,
  workspaceId: string,
  command: SecretCommand,
  by: Caller,
  options: { beforeAppend?: (events: readonly SecretEvent[], before: SecretState) => Promise<void> } = {},
): Promise<CommandResult<SecretState, SecretEvent>> {
  return handleCommand(deps, {
    workspaceId,
    streamId: secretStreamId(workspaceId, command.name),
    decider: secretDecider,
    command,
    actor: by.actor,
    correlationId: by.correlationId,
    project: projectSecret,
    ...(options.beforeAppend ? { beforeAppend: options.beforeAppend } : {}),
  });
}

/** The secret's state folded from its log (what lease decisions rest on, never a projection row). */
export async function readSecret(store: EventStore, workspaceId: string, name: string): Promise<SecretState> {
  const stream = await store.readStream<SecretEvent>(workspaceId, secretStreamId(workspaceId, name));
  return fold(secretDecider, stream.events);
}
