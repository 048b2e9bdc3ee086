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
 * Records one command on a workspace's own stream. `updateSummary` rewrites the summary projection with the
 * events; commands that change nothing it shows (denials, vault bookkeeping) leave it alone.
 */
export function onWorkspace(
  deps: CommandContext,
  workspaceId: string,
  command: WorkspaceCommand,
  by: Caller,
  options: { updateSummary?: boolean; beforeAppend?: (events: readonly WorkspaceEvent[], before: WorkspaceState) => Promise<void> } = {},
): Promise<CommandResult<WorkspaceState, WorkspaceEvent>> {
  return handleCommand(deps, {
    workspaceId,
    streamId: workspaceStreamId(workspaceId),
    decider: workspaceDecider,
    command,
    actor: by.actor,
    correlationId: by.correlationId,
    ...(options.updateSummary ? { project: projectWorkspace } : {}),
    ...(options.beforeAppend ? { beforeAppend: options.beforeAppend } : {}),
  });
}

/** The workspace's state folded from its log (what recovery and deletion decide on once projections are gone). */
export async function readWorkspace(store: EventStore, workspaceId: string): Promise<WorkspaceState> {
  const stream = await store.readStream<WorkspaceEvent>(workspaceId, workspaceStreamId(workspaceId));
  return fold(workspaceDecider, stream.events);
}
