import { anyCancel, cancelSource } from '../cancelSignal';
import type { LeasedCredential, LeasedLaunch } from '../ports/runProcesses';
import type { LiveSandbox } from '../ports/runSandboxes';
import type { CancelSignal, CommandResult, ProcessIdentity, RunningCommand } from '../ports/sandboxHost';
import type { Phase } from '../run';
import type { SecretReference, SecretUse } from '../runSpec';
import type { LeaseHolder } from '../secretPolicy';
import { assertLeases, requesterIn } from './leaseDecisions';
import type { LiveRun, RunContext } from './runContext';
import { resolveUnrevoked } from './secretRevocation';

/** A lease the run has granted and recorded, with the credential its channel delivers. */
interface HeldLease {
  readonly leaseId: string;
  readonly secretVersion: number;
  readonly credential: LeasedCredential;
}

export interface LeasedProcessSpec {
  /** What the lease is for, in events: `install[0]`, `mcp:issues`, `turn[1]`. */
  readonly operation: string;
  /** Where and for whom the leases are: the lease decision's phase table and required use. */
  readonly phase: Phase;
  readonly holder: LeaseHolder;
  readonly argv: readonly string[];
  readonly identity: ProcessIdentity;
  readonly secrets: readonly SecretReference[];
  /** Per-process env added after the guard (the gateway bearer): a delivery, not standing env. */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** Run in a private directory and hand what the process made to the workspace after it exits (CommandSpec.handOver). */
  readonly handOver?: { readonly into: string };
  readonly timeoutMs?: number;
  readonly signal?: CancelSignal;
}

/**
 * Decides every lease again (the owner may have withdrawn a use, or the requester lost the role, since the run
 * was requested), resolves each credential now (rotation: a later process gets the later value), records
 * `LeaseGranted` (expiring at the run's deadline) before the process exists, and hands the host a preparer
 * that delivers each one through its channel to this one process. `release` records `LeaseReleased`.
 */
async function grantLeases(ctx: RunContext, live: LiveRun, sandbox: LiveSandbox, spec: LeasedProcessSpec): Promise<HeldLease[]> {
  const { operation, secrets } = spec;
  if (secrets.length === 0) return [];
  const store = ctx.runtime.deps.store;
  const requester = await requesterIn(store, ctx.workspaceId, (await ctx.state()).requestedBy ?? '');
  const asks = secrets.map((ref, i) => ({ context: spec.phase, holder: spec.holder, delivery: ref.use, secretName: ref.ref, where: `${operation}.secrets[${i}]` }));
  const grants = await assertLeases(store, ctx.workspaceId, requester, asks);
  const held: HeldLease[] = [];
  try {
    for (const [i, ref] of secrets.entries()) {
      // Checked against the log after the resolve: a revoked version is never delivered, whatever a cache holds.
      const resolved = await resolveUnrevoked(ctx.runtime.deps, ctx.workspaceId, ref.ref);
      live.redactor.add(ref.ref, resolved.value);
      const leaseId = ctx.runtime.deps.ids.next();
      await ctx.record({
        type: 'GrantLease',
        leaseId,
        secretName: ref.ref,
        secretVersion: resolved.version,
        operation,
        channel: grants[i]?.channel ?? 'refused',
        expiresAt: sandbox.deadline,
      });
      held.push({
        leaseId,
        secretVersion: resolved.version,
        credential: {
          secretName: ref.ref,
          value: resolved.value,
          use: ref.use as SecretUse,
          ...(ref.as !== undefined ? { as: ref.as } : {}),
          ...(ref.host !== undefined ? { host: ref.host } : {}),
        },
      });
    }
    return held;
  } catch (error) {
    await releaseLeases(ctx, held);
    throw error;
  }
}

export async function releaseLeases(ctx: RunContext, held: readonly { leaseId: string }[]): Promise<void> {
  for (const lease of held) await ctx.record({ type: 'ReleaseLease', leaseId: lease.leaseId });
}

/** The process a spec describes, holding these leases (the caller adds its own cancel signal). */
function launchOf(spec: LeasedProcessSpec, held: readonly HeldLease[]): LeasedLaunch {
  return {
    argv: spec.argv,
    identity: spec.identity,
    credentials: held.map((h) => h.credential),
    ...(spec.extraEnv ? { extraEnv: spec.extraEnv } : {}),
    ...(spec.handOver ? { handOver: spec.handOver } : {}),
    ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
  };
}

/** Tells this instance's live leases who holds each one and how to end it (a revocation calls `end`). */
function holdLive(ctx: RunContext, held: readonly HeldLease[], end: () => Promise<unknown> | void): HeldLiveLease[] {
  return held.map((lease) => {
    const live = ctx.runtime.leases.hold({ workspaceId: ctx.workspaceId, runId: ctx.runId, leaseId: lease.leaseId, secretName: lease.credential.secretName, secretVersion: lease.secretVersion, end });
    return {
      get revoked() {
        return live.revoked;
      },
      secretName: lease.credential.secretName,
      secretVersion: lease.secretVersion,
      drop: () => live.drop(),
    };
  });
}

interface HeldLiveLease {
  readonly revoked: boolean;
  readonly secretName: string;
  readonly secretVersion: number;
  drop(): void;
}

/** A revoked lease as a step's failure reason: the secret and version, never the value. */
function revokedReason(operation: string, lease: { secretName: string; secretVersion: number }): string {
  return `${operation}: ${lease.secretName} version ${lease.secretVersion} was revoked`;
}

/** A process stopped because the owner revoked a secret it held: its phase fails with this reason. */
export class LeaseRevokedFailure extends Error {}

/**
 * Runs one process to its exit under its leases; the leases are released whatever happened. A revocation of
 * one of its secrets stops it at once and fails the step with that reason (after its transcript is kept).
 */
export async function execLeased(ctx: RunContext, live: LiveRun, sandbox: LiveSandbox, spec: LeasedProcessSpec): Promise<CommandResult> {
  const held = await grantLeases(ctx, live, sandbox, spec);
  const revocation = cancelSource();
  const lives = holdLive(ctx, held, () => revocation.cancel());
  const signal = anyCancel(spec.signal ? [spec.signal, revocation.signal] : [revocation.signal]);
  let result: CommandResult;
  try {
    result = await ctx.runtime.processes.exec(sandbox.handle, { ...launchOf(spec, held), signal: signal.signal });
  } finally {
    signal.release();
    for (const l of lives) l.drop();
    await releaseLeases(ctx, held);
  }
  const revoked = lives.find((l) => l.revoked);
  if (revoked) {
    await ctx.transcript(transcriptChunk(spec.operation, spec.argv, result));
    throw new LeaseRevokedFailure(revokedReason(spec.operation, revoked));
  }
  return result;
}

/**
 * Starts a long-lived process (an MCP server) holding its leases for its lifetime; `done` settles after release.
 * `onExit` learns whether a revocation stopped it (then the caller may start it again with the current value).
 */
export async function startLeased(
  ctx: RunContext,
  live: LiveRun,
  sandbox: LiveSandbox,
  spec: LeasedProcessSpec,
  onExit: (result: CommandResult, revoked: boolean) => Promise<void>,
): Promise<{ process: RunningCommand; done: Promise<void> }> {
  const held = await grantLeases(ctx, live, sandbox, spec);
  let process: RunningCommand;
  try {
    process = await ctx.runtime.processes.start(sandbox.handle, launchOf(spec, held));
  } catch (error) {
    await releaseLeases(ctx, held);
    throw error;
  }
  // A revocation stops the server; its exit then releases what is left and keeps its transcript as usual.
  const lives = holdLive(ctx, held, () => process.stop());
  const done = process.exited
    .then(async (result) => {
      for (const l of lives) l.drop();
      await releaseLeases(ctx, held);
      await onExit(result, lives.some((l) => l.revoked));
    })
    // Teardown releases whatever is still held; a failed write here must not crash the host.
    .catch(() => undefined);
  return { process, done };
}

/** How a command ended, in words for events (no output, so nothing to leak). */
export function describeExit(result: CommandResult): string {
  if (result.cancelled) return 'cancelled';
  if (result.timedOut) return 'deadline exceeded';
  if (result.exitCode !== null) return `exit code ${result.exitCode}`;
  return `killed by ${result.signal ?? 'a signal'}`;
}

export function transcriptChunk(operation: string, argv: readonly string[], result: CommandResult): string {
  const parts = [`--- ${operation}: ${argv.join(' ')} (${describeExit(result)}) ---\n`, result.stdout];
  if (result.stderr.length > 0) parts.push(`--- ${operation} stderr ---\n`, result.stderr);
  if (result.truncated) parts.push('\n[output truncated]\n');
  return parts.join('').replace(/([^\n])$/, '$1\n');
}
