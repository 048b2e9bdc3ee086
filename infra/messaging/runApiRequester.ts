import type { Ids } from '../../domain/ports/ids';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import type { RunOrchestrations, RunStores } from '../../domain/services/runPorts';
import type { RunRequester } from '../../domain/services/runStarter';
import { requestRun } from '../../domain/services/runs';

/** Ids whose first `next()` is the given id, then the real source's. */
function startingWith(first: string, rest: Ids): Ids {
  let used = false;
  return {
    next: () => {
      if (used) return rest.next();
      used = true;
      return first;
    },
  };
}

/**
 * The run API (`requestRun`, the same use case as `POST .../runs`) under a run id the starter chose: the
 * use case mints its run id as its first id, so it gets the claimed one. `startRunFromMessage` checks the
 * returned id, so a change in the use case fails loudly instead of breaking idempotency silently.
 */
export function runApiRequester(deps: ServiceDependencies, stores: RunStores, orchestrations: RunOrchestrations): RunRequester {
  return {
    requestRun: (caller, { workspaceId, spec, runId }) =>
      requestRun({ ...deps, ids: startingWith(runId, deps.ids) }, stores, orchestrations, caller, { workspaceId, spec }),
  };
}
