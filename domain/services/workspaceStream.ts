import { type CommandContext, type CommandResult, fold, handleCommand } from '../commandHandler';
import type { EventStore, ProjectionWrite } from '../ports/eventStore';
import { projectionKeys, workspaceStreamId } from '../streams';
import { type WorkspaceCommand, type WorkspaceEvent, type WorkspaceState, workspaceDecider, workspaceSummary } from '../workspace';

/** Who asked, for the event's meta. */
export interface Caller {
  readonly actor: string;
  readonly correlationId: string;
}

export const projectWorkspace = (state: WorkspaceState): readonly ProjectionWrite[] => [
  { kind: 'upsert', key: projectionKeys.workspace, value: workspaceSummary(state) },
];

/**
 * Records one command on a workspace's own stream. Every append rewrites the summary projection, even when
 * nothing it shows changed (a denial): the row then always carries the stream's latest version, so a reader
 * can tell a current row from an older one put back (docs/event-log.md, "Verified projections").
 * `alsoProject`: further rows written in the same transaction (a repaired row of another stream).
 */
export function onWorkspace(
  deps: CommandContext,
  workspaceId: string,
  command: WorkspaceCommand,
  by: Caller,
  options: {
    beforeAppend?: (events: readonly WorkspaceEvent[], before: WorkspaceState) => Promise<void>;
    alsoProject?: readonly ProjectionWrite[];
  } = {},
): Promise<CommandResult<WorkspaceState, WorkspaceEvent>> {
  return handleCommand(deps, {
    workspaceId,
    streamId: workspaceStreamId(workspaceId),
    decider: workspaceDecider,
    command,
    actor: by.actor,
    correlationId: by.correlationId,
    project: (state) => [...projectWorkspace(state), ...(options.alsoProject ?? [])],
    ...(options.beforeAppend ? { beforeAppend: options.beforeAppend } : {}),
  });
}

/** The workspace's state folded from its log (what recovery and deletion decide on once projections are gone). */
export async function readWorkspace(store: EventStore, workspaceId: string): Promise<WorkspaceState> {
  const stream = await store.readStream<WorkspaceEvent>(workspaceId, workspaceStreamId(workspaceId));
  return fold(workspaceDecider, stream.events);
}
