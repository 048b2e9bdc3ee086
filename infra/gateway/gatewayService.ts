import { onRun, readRunStream } from '../../domain/services/runStream';
import { DomainError, isDomainError } from '../../domain/errors';
import {
  GATEWAY_ERROR, channelOf, describeHost, hostAllowed, leaseExpiry, operationName, planGit, planNpm, type GatewayOperation, type GitPlan,
} from '../../domain/gateway';
import { createRedactor } from '../../domain/redaction';
import { AuthenticationError } from '../../domain/ports/callerAuthenticator';
import type { GatewayBearers, GatewayBinding } from '../../domain/ports/gatewayBearers';
import type { LiveSandbox, RunSandboxes } from '../../domain/ports/runSandboxes';
import type { CommandResult, SandboxHost } from '../../domain/ports/sandboxHost';
import type { ResolvedSecret } from '../../domain/ports/secretVault';
import type { RunCommand } from '../../domain/run';
import { type LeaseDelivery, decideLease } from '../../domain/secretPolicy';
import { readSecret, requesterIn } from '../../domain/services/leaseDecisions';
import { readSecretMetadata } from '../../domain/services/secrets';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { TRUNCATION_MARKER, utf8Prefix } from '../redaction/truncate';
import { assertGitCommand } from '../sandbox/channels';
import type { CredentialRequest } from '../sandbox/credentialDelivery';
import { runGit, runNpm } from './sandboxOperations';
import { performHttpOperation, type RedactionStream } from './httpOperation';
import { type IdentityTokenResponse, IDENTITY_TOKEN_KIND, issueIdentityToken } from './identityTokenOperation';
import type { WorkloadIdentityTokens } from '../../domain/ports/workloadIdentityTokens';
import { resolveUnrevoked } from '../../domain/services/secretRevocation';
import type { LiveLeases } from '../runs/liveLeases';

/**
 * The gateway (DESIGN.md §1 promise 8): the agent asks, the platform checks the destination against the
 * secret's `allowedHosts`, resolves the secret at that moment, runs the operation under a lease (git and npm
 * in one credential process inside the run's sandbox, http from this process) and answers with redacted
 * output. The run comes from the bearer's binding only. Every step of an authenticated caller is an event.
 */

export interface GatewayLimits {
  readonly operationTimeoutMs: number;
  /** Per stream (stdout, stderr, http body), after redaction. */
  readonly maxOutputBytes: number;
  readonly maxHttpResponseBytes: number;
}

export const DEFAULT_GATEWAY_LIMITS: GatewayLimits = { operationTimeoutMs: 120_000, maxOutputBytes: 64 * 1024, maxHttpResponseBytes: 1024 * 1024 };

export interface GatewayDependencies {
  readonly deps: Pick<ServiceDependencies, 'store' | 'resolver' | 'clock' | 'random' | 'ids'>;
  readonly bearers: GatewayBearers;
  readonly sandboxes: RunSandboxes;
  readonly host: SandboxHost;
  readonly limits?: Partial<GatewayLimits>;
  readonly fetch?: typeof fetch;
  /** Signs workload identity tokens (docs/identity.md); without it, the gateway issues none. */
  readonly identityTokens?: WorkloadIdentityTokens;
  /** This instance's live leases: a revocation aborts an operation in flight (the run's own instance holds it). */
  readonly leases?: LiveLeases;
}

export interface GatewayResponse {
  readonly ok: boolean;
  readonly operationId: string;
  readonly exitCode?: number;
  readonly status?: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly truncated: boolean;
}

interface RawOutcome {
  readonly exitCode: number;
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly status?: number;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

interface Redaction {
  redact(text: string): string;
  stream(): RedactionStream;
}

function deliveryOf(operation: GatewayOperation): LeaseDelivery {
  switch (operation.kind) {
    case 'git':
      return 'git';
    case 'npm-install':
      return 'npm';
    case 'http':
      return 'http';
  }
}

const BEARER_HEADER = /^Bearer ([A-Za-z0-9_-]{1,512})$/;
const ACTOR = 'system:gateway';

function truncate(text: string, maxBytes: number): { text: string; truncated: boolean } {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return { text, truncated: false };
  return { text: utf8Prefix(bytes, Math.max(0, maxBytes - Buffer.byteLength(TRUNCATION_MARKER))).toString('utf8') + TRUNCATION_MARKER, truncated: true };
}

/**
 * The sandbox host cut a stream at its limit after redacting it with the sandbox's redactor, which may not
 * know the value this operation just resolved (rotated after the sandbox started). The start of that value
 * could sit right before the cut, where no redactor can recognise it any more: drop as many bytes as its
 * longest encoded form could take (6 characters per byte, JSON's \uXXXX) before the gateway redacts again.
 */
export function dropUnsafeTail(text: string, limit: number, value: string): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length < limit) return text;
  return utf8Prefix(bytes, Math.max(0, bytes.length - 6 * Buffer.byteLength(value, 'utf8'))).toString('utf8');
}

function outcomeOf(results: readonly CommandResult[], limit: number, value: string): RawOutcome {
  const failed = results.find((r) => r.exitCode !== 0);
  const exitCode = failed ? (failed.exitCode ?? -1) : 0;
  const notes = results.flatMap((r) => [r.timedOut ? 'gateway: the command timed out\n' : '', r.cancelled ? 'gateway: the command was cancelled\n' : '']);
  return {
    exitCode,
    ok: failed === undefined,
    stdout: results.map((r) => (r.truncated ? dropUnsafeTail(r.stdout, limit, value) : r.stdout)).join(''),
    stderr: results.map((r) => (r.truncated ? dropUnsafeTail(r.stderr, limit, value) : r.stderr)).join('') + notes.join(''),
    truncated: results.some((r) => r.truncated),
  };
}

export class Gateway {
  private readonly limits: GatewayLimits;
  private unauthenticatedCount = 0;

  constructor(private readonly d: GatewayDependencies) {
    this.limits = { ...DEFAULT_GATEWAY_LIMITS, ...d.limits };
  }

  /** Callers refused before any binding was known: counted, never recorded in any workspace's log (§3). */
  get unauthenticated(): number {
    return this.unauthenticatedCount;
  }

  async authenticate(authorization: string | null): Promise<GatewayBinding> {
    try {
      const match = BEARER_HEADER.exec(authorization ?? '');
      if (!match?.[1]) throw new AuthenticationError('GATEWAY.MISSING_BEARER', 'Send the container gateway bearer (GATEWAY_TOKEN) as Authorization: Bearer');
      return await this.d.bearers.verify(match[1], this.d.deps.clock.now());
    } catch (error) {
      if (error instanceof AuthenticationError) this.unauthenticatedCount++;
      throw error;
    }
  }

  async perform(binding: GatewayBinding, operation: GatewayOperation, remotePath: string, correlationId: string): Promise<GatewayResponse> {
    const operationId = this.d.deps.ids.next();
    const record = (...commands: RunCommand[]) =>
      onRun(this.d.deps, binding.workspaceId, binding.runId, commands, { actor: ACTOR, correlationId });
    const refuse = async (reason: string, problem: DomainError): Promise<never> => {
      await record({ type: 'RecordOperationRefused', operationId, kind: operation.kind, target: operation.target, reason });
      throw problem;
    };

    const live = this.liveSandbox(binding);
    if (!live) {
      await record({ type: 'RecordOperationRefused', operationId, kind: operation.kind, target: operation.target, reason: 'no live sandbox' }).catch(() => undefined);
      throw new DomainError(GATEWAY_ERROR.SANDBOX_GONE, 'The run has no live sandbox on this instance (torn down, or another container); its bearer is no longer usable', 'gone');
    }
    let plan: GitPlan | undefined;
    try {
      plan = this.planOf(operation, remotePath);
    } catch (error) {
      // A request the policy refuses (a dir outside the workspace, a forcing refspec, an npm flag) is a denial.
      if (isDomainError(error)) await refuse(`${error.code}: ${error.message}`.slice(0, 300), new DomainError(error.code, error.message, 'invalid'));
      throw error;
    }
    // Decided from the secret's own stream, not its projection row: a row is only as trustworthy as whoever can
    // write the table. The row is still checked, so one edited in storage is reported (ProjectionMismatchDetected).
    const [metadata] = await Promise.all([
      readSecret(this.d.deps.store, binding.workspaceId, operation.secret),
      readSecretMetadata(this.d.deps, binding.workspaceId, operation.secret),
    ]);
    if (!metadata.exists)
      await refuse('secret not found', new DomainError(GATEWAY_ERROR.SECRET_NOT_FOUND, `The run's workspace has no secret named ${operation.secret}`, 'not_found'));
    const run = (await readRunStream(this.d.deps.store, binding.workspaceId, binding.runId)).state;
    const requester = await requesterIn(this.d.deps.store, binding.workspaceId, run.requestedBy ?? '');
    const lease = decideLease({ context: 'turn', holder: 'operation', delivery: deliveryOf(operation), secretName: operation.secret }, metadata, requester);
    if (!lease.ok) await refuse(`${lease.code}: ${lease.reason}`.slice(0, 300), new DomainError(lease.code, lease.reason, 'forbidden'));
    if (!hostAllowed(metadata.allowedHosts, operation.destination))
      await refuse(
        `host ${describeHost(operation.destination)} not in allowedHosts of ${operation.secret}`,
        new DomainError(GATEWAY_ERROR.HOST_NOT_ALLOWED, `${operation.secret} may not be sent to ${describeHost(operation.destination)}; it is not in the secret's allowedHosts`, 'forbidden'),
      );

    const requested: RunCommand = { type: 'RecordOperationRequested', operationId, kind: operation.kind, target: operation.target };
    const completed = (exitCode: number): RunCommand => ({ type: 'RecordOperationCompleted', operationId, exitCode });
    let secret: ResolvedSecret;
    try {
      // Checked against the log after the resolve: a revoked version (a stale cache, an edited row) never goes out.
      secret = await resolveUnrevoked(this.d.deps, binding.workspaceId, operation.secret);
    } catch (error) {
      // Deleted or revoked between the check and the resolve, or the vault is unavailable: the operation did not run.
      await record(requested, completed(-1)).catch(() => undefined);
      throw error;
    }
    const redact = this.redactorFor(live, operation.secret, secret);
    const now = this.d.deps.clock.now();
    const deadline = Math.min(Date.parse(live.deadline), Date.parse(binding.expiresAt));
    const timeoutMs = Math.max(1, Math.min(this.limits.operationTimeoutMs, deadline - now.getTime()));
    const leaseId = `${operationId}:lease`;
    await record(requested, {
      type: 'GrantLease', leaseId, secretName: operation.secret, secretVersion: secret.version, operation: `gateway:${operationName(operation)}`,
      channel: channelOf(operation), expiresAt: leaseExpiry(now.toISOString(), timeoutMs, new Date(deadline).toISOString()),
    });
    // Releasing is idempotent: an npm install releases after its credential process, the final batch again.
    const release: RunCommand = { type: 'ReleaseLease', leaseId };
    // A revocation from now on aborts the operation and withholds whatever it produced.
    const revocation = new AbortController();
    const held = this.d.leases?.hold({ workspaceId: binding.workspaceId, runId: binding.runId, leaseId, secretName: operation.secret, secretVersion: secret.version, end: () => revocation.abort() });
    let outcome: RawOutcome;
    try {
      outcome = await this.run(live, operation, plan, secret, redact, timeoutMs, () => record(release), revocation.signal);
    } catch (error) {
      await record(release, completed(-1)).catch(() => undefined);
      if (held?.revoked) throw this.revokedDuring(operation.secret, secret.version);
      if (isDomainError(error)) throw error;
      throw new DomainError(GATEWAY_ERROR.OPERATION_FAILED, redact.redact(`The operation failed: ${(error as Error).name}`), 'upstream');
    } finally {
      held?.drop();
    }
    if (held?.revoked) {
      await record(release, completed(-1)).catch(() => undefined);
      throw this.revokedDuring(operation.secret, secret.version);
    }
    await record(release, completed(outcome.exitCode));
    return this.shape(operationId, outcome, redact.redact);
  }

  private revokedDuring(name: string, version: number): DomainError {
    return new DomainError(GATEWAY_ERROR.SECRET_REVOKED, `Version ${version} of ${name} was revoked during the operation; it was stopped and its output withheld`, 'conflict');
  }

  /** A workload identity token for the bearer's run (docs/identity.md): 404 for an identity not defined, 403 for one the requester may not use. */
  async identityToken(binding: GatewayBinding, identity: string, correlationId: string): Promise<IdentityTokenResponse> {
    const live = this.liveSandbox(binding);
    if (!live) {
      await onRun(this.d.deps, binding.workspaceId, binding.runId, { type: 'RecordOperationRefused', operationId: this.d.deps.ids.next(), kind: IDENTITY_TOKEN_KIND, target: `identity:${identity}`, reason: 'no live sandbox' }, { actor: ACTOR, correlationId }).catch(() => undefined);
      throw new DomainError(GATEWAY_ERROR.SANDBOX_GONE, 'The run has no live sandbox on this instance (torn down, or another container); its bearer is no longer usable', 'gone');
    }
    return issueIdentityToken({ deps: this.d.deps, tokens: this.d.identityTokens }, binding, live, identity, correlationId);
  }

  /** A body that did not parse or validate, from an authenticated caller: recorded on its run as a refusal. */
  async refuseRequest(binding: GatewayBinding, correlationId: string, code: string): Promise<void> {
    await onRun(this.d.deps, binding.workspaceId, binding.runId, { type: 'RecordOperationRefused', operationId: this.d.deps.ids.next(), kind: 'unparsed', target: '', reason: code }, { actor: ACTOR, correlationId });
  }

  private liveSandbox(binding: GatewayBinding): LiveSandbox | undefined {
    const live = this.d.sandboxes.get(binding.runId);
    if (!live || live.workspaceId !== binding.workspaceId || live.handle.sandboxId !== binding.containerId) return undefined;
    return live;
  }

  /** The exact command, checked before anything is recorded as requested (a malformed request is a 400). */
  private planOf(operation: GatewayOperation, remotePath: string): GitPlan | undefined {
    switch (operation.kind) {
      case 'git': {
        const plan = planGit(operation, remotePath);
        assertGitCommand(operation.secret, plan.argv);
        return plan;
      }
      case 'npm-install':
        return planNpm(operation);
      case 'http':
        return undefined;
    }
  }

  /** The sandbox's redactor, plus the value just resolved (it may be newer than what the sandbox's knows). */
  private redactorFor(live: LiveSandbox, name: string, secret: ResolvedSecret): Redaction {
    const own = createRedactor([{ name, value: secret.value }]);
    return {
      redact: (text) => own.redact(live.redactor.redact(text)),
      stream: () => {
        const first = live.redactor.stream();
        const second = own.stream();
        return { push: (chunk) => second.push(first.push(chunk)), end: () => second.push(first.end()) + second.end() };
      },
    };
  }

  private async run(
    live: LiveSandbox,
    operation: GatewayOperation,
    plan: GitPlan | undefined,
    secret: ResolvedSecret,
    redact: Redaction,
    timeoutMs: number,
    release: () => Promise<unknown>,
    signal: AbortSignal,
  ): Promise<RawOutcome> {
    if (operation.kind === 'http') {
      try {
        const result = await performHttpOperation(operation, secret.value, { timeoutMs, maxResponseBytes: this.limits.maxHttpResponseBytes, signal }, () => redact.stream(), this.d.fetch);
        return { exitCode: 0, ok: result.status >= 200 && result.status < 300, stdout: '', stderr: '', status: result.status, body: result.body, headers: result.headers, truncated: result.truncated };
      } catch (error) {
        const cause = (error as { cause?: { code?: unknown } }).cause?.code;
        return { exitCode: 1, ok: false, stdout: '', stderr: `gateway: the request failed: ${(error as Error).name}${typeof cause === 'string' ? ` (${cause})` : ''}\n`, truncated: false };
      }
    }

    const use = operation.kind === 'git' ? 'git' : 'npm';
    const request: CredentialRequest = { secretName: operation.secret, value: secret.value, use, host: `${operation.destination.protocol}://${describeHost(operation.destination)}` };
    const sandboxRun = { host: this.d.host, live, request, timeoutMs, maxOutputBytes: this.limits.maxOutputBytes, release, signal };
    const steps = plan ?? { argv: [] };
    const results = operation.kind === 'git' ? await runGit(sandboxRun, operation, steps) : await runNpm(sandboxRun, steps);
    return outcomeOf(results, this.limits.maxOutputBytes, secret.value);
  }

  private shape(operationId: string, outcome: RawOutcome, redact: (text: string) => string): GatewayResponse {
    const max = this.limits.maxOutputBytes;
    const stdout = truncate(redact(outcome.stdout), max);
    const stderr = truncate(redact(outcome.stderr), max);
    const body = outcome.body !== undefined ? truncate(redact(outcome.body), this.limits.maxHttpResponseBytes) : undefined;
    const headers = outcome.headers ? Object.fromEntries(Object.entries(outcome.headers).map(([k, v]) => [k, redact(v)])) : undefined;
    return {
      ok: outcome.ok,
      operationId,
      ...(outcome.status === undefined ? { exitCode: outcome.exitCode } : { status: outcome.status }),
      stdout: stdout.text,
      stderr: stderr.text,
      ...(body ? { body: body.text } : {}),
      ...(headers ? { headers } : {}),
      truncated: outcome.truncated || stdout.truncated || stderr.truncated || (body?.truncated ?? false),
    };
  }
}
