import { type EgressPhase, type EgressTally, NOTHING_ALLOWED, allowanceFor } from '../egress';
import { RUN_ERROR } from '../catalogue';
import { DomainError, isDomainError } from '../errors';
import type { RunProcesses } from '../ports/runProcesses';
import type { LiveSandbox } from '../ports/runSandboxes';
import type { CommandResult } from '../ports/sandboxHost';
import { RefreshableRedactor } from '../redaction/refreshableRedactor';
import type { Phase, RunState } from '../run';
import type { InstallStep, RunSpec, SecretReference } from '../runSpec';
import { workspaceEgressList } from './egress';
import { describeExit, execLeased, startLeased, transcriptChunk } from './leasedProcess';
import { recoverSandbox } from './recoveredSandbox';
import { type LiveRun, RunContext, type RunRuntime } from './runContext';
import { readRunSpec } from './runs';
import { loadSecretMaterial } from './runSecrets';

type McpServer = NonNullable<RunSpec['mcp']>[number];

/** What an activity returns: names, numbers and redacted reasons only, never a value or an output. */
export type StepResult = { readonly ok: true } | { readonly ok: false; readonly reason: string };
export interface SeedResult {
  readonly ok: boolean;
  readonly reason?: string;
  readonly deadline?: string;
  readonly turns?: number;
}

class StepFailure extends Error {}

const SANDBOX_LOST = 'sandbox lost: the host instance that ran it is gone (restarted or moved)';

async function liveOf(ctx: RunContext, state: RunState): Promise<{ sandbox: LiveSandbox; live: LiveRun }> {
  if (!ctx.runtime.sandboxes.get(ctx.runId)) await recoverSandbox(ctx, state, await specOf(ctx, state), (live, sandbox, server) => startServer(ctx, live, sandbox, server));
  const sandbox = ctx.runtime.sandboxes.get(ctx.runId);
  const live = ctx.runtime.live.get(ctx.runId);
  if (!sandbox || !live) throw new StepFailure(SANDBOX_LOST);
  return { sandbox, live };
}

function msUntil(deadline: string, ctx: RunContext): number {
  return Math.max(1, Date.parse(deadline) - ctx.runtime.deps.clock.now().getTime());
}

async function specOf(ctx: RunContext, state: RunState): Promise<RunSpec> {
  return readRunSpec(ctx.runtime.stores, state);
}

/** The RunSpec's egress key for each phase whose processes may use the network. */
const EGRESS_PHASE: Partial<Record<Phase, EgressPhase>> = { install: 'install', mcp: 'mcp', turn: 'turns' };

/**
 * Points the sandbox's egress proxy at this phase's allowance: the owner's list as the log has it now, narrowed
 * by the spec for the phase. Read from verified state at every step, so a list shrunk mid-run applies at once.
 */
async function enterEgressPhase(ctx: RunContext, sandbox: LiveSandbox, spec: RunSpec, which: Phase): Promise<void> {
  const phase = EGRESS_PHASE[which];
  if (!phase) return;
  const workspaceList = await workspaceEgressList(ctx.runtime.deps, ctx.workspaceId);
  ctx.runtime.host.setEgress(sandbox.handle, allowanceFor(workspaceList, spec.egress, phase));
}

/**
 * Records what the sandbox's egress proxy decided since the previous step: one append (counts as
 * `EgressRecorded`, the first distinct refusals as `OperationRefused`), whatever the agent tried. Targets and
 * reasons pass the redactor: a host name is the agent's choice and could carry what it holds.
 */
export async function recordEgress(ctx: RunContext, which: Phase, turn: number | undefined): Promise<void> {
  const sandbox = ctx.runtime.sandboxes.get(ctx.runId);
  if (!sandbox) return;
  let tally: EgressTally | undefined;
  try {
    tally = ctx.runtime.host.drainEgress(sandbox.handle);
  } catch {
    return; // torn down already
  }
  if (!tally || (tally.allowed === 0 && tally.refused === 0)) return;
  const refusals = await Promise.all(tally.refusals.map(async (r) => ({ target: await ctx.reason(`${r.host}:${r.port}`, 260), reason: await ctx.reason(r.reason, 100) })));
  await ctx.record({ type: 'RecordEgress', phase: which, ...(turn !== undefined ? { turn } : {}), allowed: tally.allowed, refused: tally.refused, refusals });
}

/**
 * One phase: start it (a re-run after a crash finds it already running and fails it: its processes died with
 * the host), run the body, complete or fail it. Domain refusals (cancelled, torn down) end the step quietly.
 */
async function phase(ctx: RunContext, which: Phase, turn: number | undefined, body: (state: RunState) => Promise<void>): Promise<StepResult> {
  let state = await ctx.state();
  if (state.cancellation !== undefined) return { ok: false, reason: 'cancelled' };
  if (state.failure !== undefined) return { ok: false, reason: 'an earlier step failed' };
  const rerun = state.current?.phase === which && (which !== 'turn' || state.current.turn === turn);
  try {
    if (!rerun) state = await ctx.record({ type: 'StartPhase', phase: which, ...(turn !== undefined ? { turn } : {}) });
    if (rerun) throw new StepFailure(ctx.runtime.sandboxes.get(ctx.runId) ? 'interrupted: the step was started twice' : SANDBOX_LOST);
    if (ctx.runtime.aborts.aborted(ctx.runId)) throw new StepFailure(ctx.runtime.aborts.reasonOf(ctx.runId));
    await body(state);
    await recordEgress(ctx, which, turn);
    await ctx.record({ type: 'CompletePhase', phase: which });
    return { ok: true };
  } catch (error) {
    await recordEgress(ctx, which, turn).catch(() => undefined);
    // A cancel recorded mid-step refuses the step's next lease or token: the step ends "cancelled", as the
    // interrupt and teardown record it, whichever of them reaches the log first.
    const cancelled = isDomainError(error) && error.code === RUN_ERROR.CANCELLED;
    const reason = cancelled ? 'cancelled' : await ctx.reason(error instanceof Error ? error.message : 'step failed');
    try {
      await ctx.record({ type: 'FailPhase', phase: which, reason });
    } catch (recordError) {
      // Teardown got there first (it fails the interrupted phase itself): nothing left to record.
      if (!isDomainError(recordError)) throw recordError;
    }
    return { ok: false, reason };
  }
}

export async function seed(runtime: RunRuntime, workspaceId: string, runId: string): Promise<SeedResult> {
  const ctx = new RunContext(runtime, workspaceId, runId);
  let spec: RunSpec | undefined;
  let deadline = '';
  const result = await phase(ctx, 'seed', undefined, async (state) => {
    deadline = state.deadline;
    spec = await specOf(ctx, state);
    const material = await loadSecretMaterial(runtime.deps, workspaceId);
    const redactor = new RefreshableRedactor(material.values);
    // Nothing may leave the sandbox until a phase says where (no process runs before install anyway).
    // Also refused here, not only at the route: a queued request reaches this step without it.
    if (spec.keepWorkspace && !runtime.host.capabilities.keepsWorkspaceVolumes)
      throw new DomainError(RUN_ERROR.KEPT_WORKSPACE_UNSUPPORTED, 'keepWorkspace: this sandbox host keeps no workspace volumes', 'invalid');
    const keep = spec.keepWorkspace ? { keptVolume: workspaceId } : {};
    const handle = await runtime.host.create({ runId, workspaceId, files: spec.template.files, redactor, guard: material.guard, egress: NOTHING_ALLOWED, placement: { workspaceId }, ...keep, ...(spec.env ? { env: spec.env } : {}) });
    try {
      // Refused once teardown has begun (a cancel raced the seed): then this sandbox is nobody's, so it goes now.
      await ctx.record({
        type: 'RecordSandboxLaunched',
        sandboxId: handle.sandboxId,
        isolated: handle.isolated,
        ...(handle.hostId ? { hostId: handle.hostId } : {}),
        ...(runtime.host.capabilities.reason ? { degradedReason: runtime.host.capabilities.reason } : {}),
      });
    } catch (error) {
      await runtime.host.teardown(handle);
      throw error;
    }
    runtime.live.set(runId, { redactor, servers: [] });
    runtime.sandboxes.put({ workspaceId, runId, handle, redactor, guard: material.guard, deadline: state.deadline });
  });
  if (!result.ok) return result;
  return { ok: true, deadline, turns: spec?.turns.length ?? 0 };
}

const INSTALL_GIT_SUBCOMMANDS: ReadonlySet<string> = new Set(['clone', 'ls-remote']);

interface InstallProcess {
  readonly argv: readonly string[];
  readonly secrets: readonly SecretReference[];
  readonly handOver?: { readonly into: string };
}

/** The processes one install step becomes: npm splits in two (token-holding install, then scripts without it). */
function installProcesses(processes: RunProcesses, step: InstallStep, index: number): InstallProcess[] {
  const secrets = step.secrets ?? [];
  const npm = secrets.find((s) => s.use === 'npm');
  if (npm) {
    if (secrets.length > 1) throw new StepFailure(`install[${index}]: an npm step takes exactly one secret`);
    return processes.planNpmInstall(step.command, { secretName: npm.ref, ...(npm.host ? { host: npm.host } : {}) }).map((p): InstallProcess => ({
      argv: p.argv,
      secrets: p.credentialed ? [npm] : [],
    }));
  }
  // A credentialed fetch or push reads the repository's own config, which a dependency's script (run as the
  // agent) may have written; only a fresh clone is safe here. Fetch and push go through the gateway, which
  // gives the credential process a private git directory. The clone itself runs in a private directory (a
  // daemon of an earlier step could otherwise write the new repository's config while git reads it) and
  // is handed to the workspace root once git has exited.
  const git = secrets.filter((s) => s.use === 'git');
  for (const g of git) processes.checkCredentialedGit(g.ref, step.command, INSTALL_GIT_SUBCOMMANDS);
  return [{ argv: step.command, secrets, ...(git.length > 0 ? { handOver: { into: '.' } } : {}) }];
}

export async function install(runtime: RunRuntime, workspaceId: string, runId: string): Promise<StepResult> {
  const ctx = new RunContext(runtime, workspaceId, runId);
  return phase(ctx, 'install', undefined, async (state) => {
    const { sandbox, live } = await liveOf(ctx, state);
    const spec = await specOf(ctx, state);
    await enterEgressPhase(ctx, sandbox, spec, 'install');
    for (const [index, step] of (spec.install ?? []).entries()) {
      for (const proc of installProcesses(runtime.processes, step, index)) {
        const operation = `install[${index}]`;
        const result = await execLeased(ctx, live, sandbox, {
          operation,
          phase: 'install',
          holder: 'install-command',
          argv: proc.argv,
          identity: proc.secrets.length > 0 ? 'credential' : 'agent',
          secrets: proc.secrets,
          ...(proc.handOver ? { handOver: proc.handOver } : {}),
          timeoutMs: msUntil(sandbox.deadline, ctx),
          signal: runtime.aborts.signalFor(runId),
        });
        await ctx.transcript(transcriptChunk(operation, proc.argv, result));
        if (result.exitCode !== 0) throw stepFailureOf(ctx, operation, result);
      }
    }
  });
}

export async function mcp(runtime: RunRuntime, workspaceId: string, runId: string): Promise<StepResult> {
  const ctx = new RunContext(runtime, workspaceId, runId);
  return phase(ctx, 'mcp', undefined, async (state) => {
    const { sandbox, live } = await liveOf(ctx, state);
    const spec = await specOf(ctx, state);
    await enterEgressPhase(ctx, sandbox, spec, 'mcp');
    for (const server of spec.mcp ?? []) await startServer(ctx, live, sandbox, server);
  });
}

/**
 * Starts one MCP server under its leases. A revocation of a secret it holds stops it; it is then started again
 * with the current version (a new lease), unless the run is ending or the secret has no value left, in which case
 * it stays stopped and its transcript says why.
 */
async function startServer(ctx: RunContext, live: LiveRun, sandbox: LiveSandbox, server: McpServer): Promise<void> {
  const operation = `mcp:${server.name}`;
  const started = await startLeased(ctx, live, sandbox, { operation, phase: 'mcp', holder: 'mcp-server', argv: server.command, identity: 'credential', secrets: server.secrets ?? [] }, async (result, revoked) => {
    await ctx.transcript(transcriptChunk(operation, server.command, result));
    if (!revoked || ctx.runtime.aborts.aborted(ctx.runId) || ctx.runtime.sandboxes.get(ctx.runId) !== sandbox) return;
    await startServer(ctx, live, sandbox, server).catch(async (error: unknown) => {
      await ctx.transcript(`--- ${operation}: not restarted after a revocation: ${await ctx.reason(error instanceof Error ? error.message : 'failed')} ---\n`);
    });
  });
  const entry = { name: server.name, ...started };
  const index = live.servers.findIndex((s) => s.name === server.name);
  if (index === -1) live.servers.push(entry);
  else live.servers[index] = entry;
}

export async function turn(runtime: RunRuntime, workspaceId: string, runId: string, n: number): Promise<StepResult> {
  const ctx = new RunContext(runtime, workspaceId, runId);
  return phase(ctx, 'turn', n, async (state) => {
    const { sandbox, live } = await liveOf(ctx, state);
    const spec = await specOf(ctx, state);
    const turnSpec = spec.turns[n - 1];
    if (!turnSpec) throw new StepFailure(`turn ${n} is not in the spec`);
    await enterEgressPhase(ctx, sandbox, spec, 'turn');
    const bearer = await runtime.bearers.mint({ workspaceId, runId, containerId: sandbox.handle.sandboxId, expiresAt: sandbox.deadline });
    live.redactor.add('GATEWAY_TOKEN', bearer);
    if (runtime.aborts.aborted(runId)) {
      // Teardown may have revoked the run's bearers before this one existed.
      await runtime.bearers.revokeRun(workspaceId, runId);
      throw new StepFailure(runtime.aborts.reasonOf(runId));
    }
    const operation = `turn[${n}]`;
    const result = await execLeased(ctx, live, sandbox, {
      operation,
      phase: 'turn',
      holder: 'agent-runtime',
      argv: turnSpec.command,
      identity: 'agent',
      secrets: turnSpec.modelKey ? [{ ref: turnSpec.modelKey, use: 'env', as: turnSpec.modelKey }] : [],
      extraEnv: { GATEWAY_URL: runtime.gatewayUrl, GATEWAY_TOKEN: bearer },
      timeoutMs: msUntil(sandbox.deadline, ctx),
      signal: runtime.aborts.signalFor(runId),
    });
    await ctx.transcript(transcriptChunk(operation, turnSpec.command, result));
    if (result.exitCode !== 0) throw stepFailureOf(ctx, operation, result);
  });
}

/**
 * A command the run's cancellation or deadline stopped fails its phase with that reason, exactly as the
 * interrupt step would record it: whichever of the two gets there first, the run reads the same.
 */
function stepFailureOf(ctx: RunContext, operation: string, result: CommandResult): StepFailure {
  if (result.cancelled) return new StepFailure(ctx.runtime.aborts.reasonOf(ctx.runId));
  if (result.timedOut) return new StepFailure('deadline exceeded');
  return new StepFailure(`${operation} failed: ${describeExit(result)}`);
}
