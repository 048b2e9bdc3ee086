import type { ServiceDependencies } from '../domain/services/dependencies';
import type { RunOrchestrations, RunRequester, RunStores } from '../domain/services/runPorts';
import { requestRun } from '../domain/services/runs';

/** The run API (`requestRun`, the same use case as `POST .../runs`) under the run id the starter claimed. */
export function runApiRequester(deps: ServiceDependencies, stores: RunStores, orchestrations: RunOrchestrations): RunRequester {
  return {
    requestRun: (caller, { workspaceId, spec, runId }) => requestRun(deps, stores, orchestrations, caller, { workspaceId, spec, runId }),
  };
}
