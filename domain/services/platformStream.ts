import { type CommandContext, type CommandResult, fold, handleCommand } from '../commandHandler';
import type { EventStore } from '../ports/eventStore';
import { type PlatformCommand, type PlatformEvent, type PlatformState, platformDecider } from '../platform';
import { PLATFORM_PARTITION, signingKeysStreamId } from '../streams';
import type { Caller } from './workspaceStream';

/** Records one command on the platform's signing-key stream, in the platform's own partition (no projection). */
export function onPlatform(deps: CommandContext, command: PlatformCommand, by: Caller): Promise<CommandResult<PlatformState, PlatformEvent>> {
  return handleCommand(deps, {
    workspaceId: PLATFORM_PARTITION,
    streamId: signingKeysStreamId(),
    decider: platformDecider,
    command,
    actor: by.actor,
    correlationId: by.correlationId,
  });
}

/** The platform's state folded from its signing-key stream. */
export async function readPlatform(store: EventStore): Promise<PlatformState> {
  const stream = await store.readStream<PlatformEvent>(PLATFORM_PARTITION, signingKeysStreamId());
  return fold(platformDecider, stream.events);
}
