import { EgressWideningRefused, firstWidening } from '../egress';
import { DomainError } from '../errors';
import { checkRunSpecEnv, checkRunSpecValues, describeRefusal } from '../launchGuard';
import { type RunState, runStatus } from '../run';
import { type RunSpec, secretReferencesOf } from '../runSpec';
import { authorize } from './access';
import { workspaceEgressList } from './egress';
import type { ServiceDependencies } from './dependencies';
import type { LeaseAsk } from '../secretPolicy';
import { LeaseRefused, assertLeases } from './leaseDecisions';
import type { RunOrchestrations, RunStores } from './runPorts';
import { loadSecretMaterial, redactDeep } from './runSecrets';
import { onRun, readRunStream } from './runStream';
import type { Caller } from './workspaces';
import { RUN_ERROR } from '../catalogue';

export { RUN_ERROR };

/** A refusal at the door: names the key (and the secret's name), never a value. */
export class LaunchRefusedAtRequest extends DomainError {
  constructor(
    readonly runId: string,
    readonly offendingKey: string,
    message: string,
  ) {
    super(RUN_ERROR.LAUNCH_REFUSED, message, 'invalid');
    this.name = 'LaunchRefusedAtRequest';
  }
}

export { projectRun } from './runStream';

/**
 * Every credential a spec asks for, as the lease decision sees it: install steps' references are install
 * commands', MCP servers' are their own, a turn's model key is the agent runtime's `env` lease.
 */
export function leaseAsksOf(spec: RunSpec): (LeaseAsk & { where: string })[] {
  const asks: (LeaseAsk & { where: string })[] = [];
  const add = (context: LeaseAsk['context'], holder: LeaseAsk['holder'], where: string, references: readonly { ref: string; use: string }[] = []) =>
    references.forEach((r, i) => asks.push({ context, holder, delivery: r.use, secretName: r.ref, where: `${where}.secrets[${i}]` }));
  (spec.install ?? []).forEach((step, i) => add('install', 'install-command', `install[${i}]`, step.secrets));
  (spec.mcp ?? []).forEach((server, i) => add('mcp', 'mcp-server', `mcp[${i}]`, server.secrets));
  spec.turns.forEach((turn, i) => {
    if (turn.modelKey !== undefined) asks.push({ context: 'turn', holder: 'agent-runtime', delivery: 'env', secretName: turn.modelKey, where: `turns[${i}].modelKey` });
  });
  return asks;
}

/** Every secret a spec names: its references' refs and each turn's model key. */
export function referencedSecrets(spec: RunSpec): { where: string; name: string }[] {
  const refs = secretReferencesOf(spec).map(({ where, reference }) => ({ where, name: reference.ref }));
  spec.turns.forEach((turn, i) => {
    if (turn.modelKey !== undefined) refs.push({ where: `turns[${i}].modelKey`, name: turn.modelKey });
  });
  return refs;
}

/**
 * `POST .../runs`: the guard checks the standing env before anything exists (a refusal is recorded as
 * `SandboxLaunchRefused` on a minted run id and no orchestration starts), every referenced secret must
 * exist, the spec is stored by reference, then the orchestration starts with the run id as its only input.
 */
export async function requestRun(
  deps: ServiceDependencies,
  stores: RunStores,
  orchestrations: RunOrchestrations,
  caller: Caller,
  /** `runId`: the id a queued request claimed (so a redelivery finds the same run); a new one when absent. */
  request: { workspaceId: string; spec: RunSpec; runId?: string },
): Promise<{ runId: string }> {
  const { workspaceId, spec } = request;
  const access = await authorize(deps, { workspaceId, actor: caller.actor, action: 'runs.request', requires: 'member', correlationId: caller.correlationId });
  const runId = request.runId ?? deps.ids.next();
  const refuse = (offendingKey: string, reason: string) =>
    onRun(deps, workspaceId, runId, { type: 'RefuseRunRequest', offendingKey, reason }, caller, { updateStatus: false });
  const material = await loadSecretMaterial(deps, workspaceId);
  const envDecision = checkRunSpecEnv(spec, material.guard);
  const decision = envDecision.ok ? checkRunSpecValues(spec, material.guard) : envDecision;
  if (!decision.ok) {
    await refuse(decision.offendingKey, decision.reason);
    throw new LaunchRefusedAtRequest(runId, decision.offendingKey, describeRefusal(decision));
  }
  const missing = referencedSecrets(spec).find((r) => material.versions[r.name] === undefined);
  if (missing)
    throw new DomainError(RUN_ERROR.SECRET_NOT_FOUND, `${missing.where} references secret ${missing.name}, which does not exist in this workspace`, 'invalid');
  try {
    await assertLeases(deps.store, workspaceId, { userId: caller.actor, role: access.role }, leaseAsksOf(spec));
  } catch (error) {
    if (error instanceof LeaseRefused) await refuse(error.where, error.refusal.code);
    throw error;
  }
  // A run spec may narrow the owner's egress allow-list per phase, never widen it.
  const widening = firstWidening(await workspaceEgressList(deps, workspaceId), spec.egress);
  if (widening) {
    await refuse(widening.where, `egress host ${widening.host} is not on the workspace's allow-list`);
    throw new EgressWideningRefused(widening.where, widening.host);
  }
  const stored = await stores.specs.put(workspaceId, runId, spec);
  const deadline = new Date(deps.clock.now().getTime() + spec.deadlineSeconds * 1000).toISOString();
  await onRun(deps, workspaceId, runId, { type: 'RequestRun', runId, workspaceId, deadline, specRef: stored.ref, specDigest: stored.digest }, caller);
  await orchestrations.start(workspaceId, runId);
  return { runId };
}

/**
 * The run's spec, read again at every step: the blob must still hash to the digest `RunRequested` recorded,
 * so a spec rewritten in storage after the request (another secret as a turn's model key, say) never runs.
 * A mismatch throws `RUN.SPEC_TAMPERED`; the step records it as its failure reason and the run fails.
 */
export async function readRunSpec(stores: Pick<RunStores, 'specs'>, run: Pick<RunState, 'workspaceId' | 'specRef' | 'specDigest'>): Promise<RunSpec> {
  const { spec, digest } = await stores.specs.get(run.workspaceId, run.specRef);
  if (run.specDigest === '' || digest !== run.specDigest)
    throw new DomainError(
      RUN_ERROR.SPEC_TAMPERED,
      `${RUN_ERROR.SPEC_TAMPERED}: the stored run spec does not match the digest recorded in RunRequested (changed after the request); the run stops`,
      'precondition',
    );
  return spec;
}

async function readRun(deps: ServiceDependencies, workspaceId: string, runId: string) {
  const { state, events } = await readRunStream(deps.store, workspaceId, runId);
  if (!state.exists) throw new DomainError(RUN_ERROR.NOT_FOUND, 'Run not found', 'not_found');
  return { state, events };
}

/** `GET .../runs/{runId}`: status, phases and events, every string passed through the workspace's redactor. */
export async function getRun(deps: ServiceDependencies, caller: Caller, request: { workspaceId: string; runId: string }) {
  const { workspaceId, runId } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'runs.read', requires: 'member', correlationId: caller.correlationId });
  const { state, events } = await readRun(deps, workspaceId, runId);
  const { redactor } = await loadSecretMaterial(deps, workspaceId);
  const view = {
    ...runStatus(state),
    events: events.map((e) => ({ version: e.streamVersion, sequence: e.sequence, type: e.type, at: e.meta.at, actor: e.meta.actor, data: e.data })),
  };
  return redactDeep(view, redactor) as Record<string, unknown>;
}

export async function readTranscript(deps: ServiceDependencies, stores: RunStores, caller: Caller, request: { workspaceId: string; runId: string }): Promise<string> {
  const { workspaceId, runId } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'runs.transcript', requires: 'member', correlationId: caller.correlationId });
  await readRun(deps, workspaceId, runId);
  const text = await stores.transcripts.read(workspaceId, runId);
  // Written redacted already; redacting again on the way out also masks values rotated since it was written.
  return (await loadSecretMaterial(deps, workspaceId)).redactor.redact(text);
}

/** `POST .../cancel`: records the request, then tells the orchestration, which kills the running step. */
export async function cancelRun(
  deps: ServiceDependencies,
  orchestrations: RunOrchestrations,
  caller: Caller,
  request: { workspaceId: string; runId: string },
): Promise<void> {
  const { workspaceId, runId } = request;
  await authorize(deps, { workspaceId, actor: caller.actor, action: 'runs.cancel', requires: 'member', correlationId: caller.correlationId });
  await readRun(deps, workspaceId, runId);
  await onRun(deps, workspaceId, runId, { type: 'CancelRun', reason: `cancelled by ${caller.actor}` }, caller);
  await orchestrations.raiseCancel(runId);
}
