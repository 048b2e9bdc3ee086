import { type CommandContext, type CommandResult, fold, handleCommand } from '../commandHandler';
import type { EventStore, ProjectionWrite } from '../ports/eventStore';
import { type RunCommand, type RunEvent, type RunState, runDecider, runStatus } from '../run';
import { projectionKeys, runStreamId } from '../streams';
import type { Caller } from './workspaceStream';

export const projectRun = (state: RunState): readonly ProjectionWrite[] => [
  { kind: 'upsert', key: projectionKeys.run(state.runId), value: runStatus(state) },
];

/**
 * The run decider over several commands decided in order against the evolving state, appended as one
 * transaction: an operation's request and lease grant land together, and so do its release and completion.
 */
export const runBatchDecider = {
  initialState: runDecider.initialState,
  evolve: runDecider.evolve,
  decide(commands: readonly RunCommand[], state: RunState): RunEvent[] {
    const events: RunEvent[] = [];
    let current = state;
    for (const command of commands) {
      for (const event of runDecider.decide(command, current)) {
        events.push(event);
        current = runDecider.evolve(current, event);
      }
    }
    return events;
  },
};

/**
 * Records one command (or several, as one transaction) on a run's stream and rewrites the run's status
 * projection with it, which is what the sweep reads for leases and deadlines. Only a refusal at the door,
 * which records on a run that never existed, leaves the projection alone (`updateStatus: false`): a status row
 * for it would look like a Pending run to the sweep.
 */
export function onRun(
  deps: CommandContext,
  workspaceId: string,
  runId: string,
  command: RunCommand | readonly RunCommand[],
  by: Caller,
  options: { updateStatus?: boolean } = {},
): Promise<CommandResult<RunState, RunEvent>> {
  const common = {
    workspaceId,
    streamId: runStreamId(runId),
    actor: by.actor,
    correlationId: by.correlationId,
    ...(options.updateStatus === false ? {} : { project: projectRun }),
  };
  return isBatch(command)
    ? handleCommand(deps, { ...common, decider: runBatchDecider, command })
    : handleCommand(deps, { ...common, decider: runDecider, command });
}

const isBatch = (command: RunCommand | readonly RunCommand[]): command is readonly RunCommand[] => Array.isArray(command);

/** The run's state folded from its log, with the events it was folded from. */
export async function readRunStream(store: EventStore, workspaceId: string, runId: string): Promise<{ state: RunState; events: Awaited<ReturnType<EventStore['readStream']>>['events'] }> {
  const stream = await store.readStream<RunEvent>(workspaceId, runStreamId(runId));
  return { state: fold(runDecider, stream.events), events: stream.events };
}
