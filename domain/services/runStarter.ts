import { DomainError, isDomainError } from '../errors';
import { runStreamId } from '../streams';
import { authorize } from './access';
import type { ServiceDependencies } from './dependencies';
import type { RunStarterPorts, VerifiedRunRequest } from './runPorts';
import type { Caller } from './workspaces';
import { RUN_ERROR, RUN_REQUEST_ERROR } from '../catalogue';

export type RunStartOutcome = { readonly outcome: 'started'; readonly runId: string };

export { RUN_REQUEST_ERROR };

const replayed = (runId: string): DomainError =>
  new DomainError(RUN_REQUEST_ERROR.REPLAYED, `replayed: this request id was used already (run ${runId}); a request id starts one run, once`, 'conflict');

const RUN_ALREADY_EXISTS = RUN_ERROR.ALREADY_EXISTS;

async function runExists(deps: ServiceDependencies, workspaceId: string, runId: string): Promise<boolean> {
  return (await deps.store.readStream(workspaceId, runStreamId(runId))).version > 0;
}

/**
 * Starts the run a verified queue message asks for. The requesting user must be a member of the workspace (the
 * same `authorize` as `POST .../runs`, so a denial is recorded as `AccessDenied`). A request id is single-use:
 * it maps to one run id (derived from it by the edge, and bound in the ledger), and a second delivery — a
 * replay, a duplicate, a concurrent twin — throws `RUN_REQUEST.REPLAYED` and starts nothing. Only a delivery
 * whose earlier try died before the run was recorded goes on to request it. Domain errors propagate: the edge
 * decides which are permanent.
 */
export async function startRunFromMessage(deps: ServiceDependencies, ports: RunStarterPorts, message: VerifiedRunRequest): Promise<RunStartOutcome> {
  const { workspaceId, requestedBy, requestId, spec } = message;
  const caller: Caller = { actor: requestedBy, correlationId: requestId };
  await authorize(deps, { workspaceId, actor: requestedBy, action: 'runs.request', requires: 'member', correlationId: requestId });
  const claim = await ports.ledger.claim(workspaceId, requestId, { runId: message.runId, requestedBy });
  if (claim.requestedBy !== requestedBy)
    throw new DomainError(RUN_REQUEST_ERROR.ID_REUSED, 'This request id was already used by another user in this workspace', 'conflict');
  if (claim.runId !== message.runId) throw replayed(claim.runId);
  if (!claim.fresh && (await runExists(deps, workspaceId, claim.runId))) throw replayed(claim.runId);
  try {
    const { runId } = await ports.requester.requestRun(caller, { workspaceId, spec, runId: claim.runId });
    if (runId !== claim.runId) throw new Error(`The run API started run ${runId} instead of the claimed ${claim.runId}`);
    return { outcome: 'started', runId };
  } catch (error) {
    // A concurrent delivery of the same request won the run stream's first insert.
    if (isDomainError(error) && error.code === RUN_ALREADY_EXISTS) throw replayed(claim.runId);
    throw error;
  }
}
