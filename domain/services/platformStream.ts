import { type CommandContext, type CommandResult, fold, handleCommand } from '../commandHandler';
import type { EventStore } from '../ports/eventStore';
import { type PlatformCommand, type PlatformEvent, type PlatformState, platformDecider } from '../platform';
import { PLATFORM_PARTITION, signingKeysStreamId } from '../streams';
import type { Caller } from './workspaceStream';

/**
 * Records one command on one of the platform's key-ring streams (the checkpoint key's by default, the workload
 * identity key's too), in the platform's own partition (no projection).
 */
export function onPlatform(
  deps: CommandContext,
  command: PlatformCommand,
  by: Caller,
  streamId: string = signingKeysStreamId(),
): Promise<CommandResult<PlatformState, PlatformEvent>> {
  return handleCommand(deps, {
    workspaceId: PLATFORM_PARTITION,
    streamId,
    decider: platformDecider,
    command,
    actor: by.actor,
    correlationId: by.correlationId,
  });
}

/** The platform's state folded from one of its key-ring streams. */
export async function readPlatform(store: EventStore, streamId: string = signingKeysStreamId()): Promise<PlatformState> {
  const stream = await store.readStream<PlatformEvent>(PLATFORM_PARTITION, streamId);
  return fold(platformDecider, stream.events);
}
