import { onRun, readRunStream } from './runStream';
import { DomainError, isDomainError } from '../errors';
import {
  GATEWAY_ERROR, channelOf, describeHost, hostAllowed, leaseExpiry, operationName, type GatewayOperation, type GitPlan,
} from '../gateway';
import { createRedactor } from '../redaction';
import { AuthenticationError } from '../ports/callerAuthenticator';
import type { GatewayBearers, GatewayBinding } from '../ports/gatewayBearers';
import type { GatewayLeases, GatewayOperationRunner, GatewayOutcome, GatewayResponse } from '../ports/gatewayOperations';
import type { LiveSandbox, RunSandboxes } from '../ports/runSandboxes';
import type { OutputRedactor } from '../ports/sandboxHost';
import type { ResolvedSecret } from '../ports/secretVault';
import type { RunCommand } from '../run';
import { type LeaseDelivery, decideLease } from '../secretPolicy';
import { readSecret, requesterIn } from './leaseDecisions';
import { readSecretMetadata } from './secrets';
import type { ServiceDependencies } from './dependencies';
import { type IdentityTokenResponse, IDENTITY_TOKEN_KIND, issueIdentityToken } from './gatewayIdentityToken';
import type { WorkloadIdentityTokens } from '../ports/workloadIdentityTokens';
import { resolveUnrevoked } from './secretRevocation';
import { cancelSource } from '../cancelSignal';
import { type GatewayAdoption, sandboxForBearer } from './gatewaySandbox';

/**
 * The gateway (DESIGN.md §1 promise 8): the agent asks, the platform checks the destination against the
 * secret's `allowedHosts`, resolves the secret at that moment, runs the operation under a lease (git and npm
 * in one credential process inside the run's sandbox, http from this process) and answers with redacted
 * output. The run comes from the bearer's binding only. Every step of an authenticated caller is an event.
 */

export interface GatewayDependencies {
  readonly deps: Pick<ServiceDependencies, 'store' | 'vault' | 'resolver' | 'clock' | 'random' | 'ids'>;
  readonly bearers: GatewayBearers;
  /** This instance's own sandboxes (the run lifecycle's registry). */
  readonly sandboxes: RunSandboxes;
  /** How a run's sandbox held by another instance is served here; without it, only this instance's own serve. */
  readonly adoption?: GatewayAdoption;
  /** Plans, runs and shapes the operation itself (the sandbox's credential process, or an http request). */
  readonly operations: GatewayOperationRunner;
  /** How long one operation may run (never past the run's deadline or the bearer's expiry). */
  readonly operationTimeoutMs: number;
  /** Signs workload identity tokens (docs/identity.md); without it, the gateway issues none. */
  readonly identityTokens?: WorkloadIdentityTokens;
  /** This instance's live leases: a revocation aborts an operation in flight (the run's own instance holds it). */
  readonly leases?: GatewayLeases;
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

export class Gateway {
  private unauthenticatedCount = 0;

  constructor(private readonly d: GatewayDependencies) {}

  /** Callers refused before any binding was known: counted, never recorded in any workspace's log (§3). */
  get unauthenticated(): number {
    return this.unauthenticatedCount;
  }

  async authenticate(authorization: string | null): Promise<GatewayBinding> {
    try {
      const match = BEARER_HEADER.exec(authorization ?? '');
      if (!match?.[1]) throw new AuthenticationError(GATEWAY_ERROR.MISSING_BEARER, 'Send the container gateway bearer (GATEWAY_TOKEN) as Authorization: Bearer');
      return await this.d.bearers.verify(match[1], this.d.deps.clock.now());
    } catch (error) {
      if (error instanceof AuthenticationError) this.unauthenticatedCount++;
      throw error;
    }
  }

  async perform(binding: GatewayBinding, operation: GatewayOperation, remotePath: string, correlationId: string): Promise<GatewayResponse> {
    const operationId = this.d.deps.ids.next();
    const sandbox = await this.sandboxFor(binding, correlationId, { operationId, kind: operation.kind, target: operation.target });
    try {
      return await this.performIn(sandbox, binding, operation, remotePath, operationId, correlationId);
    } finally {
      await sandbox.leave();
    }
  }

  private async performIn(live: LiveSandbox, binding: GatewayBinding, operation: GatewayOperation, remotePath: string, operationId: string, correlationId: string): Promise<GatewayResponse> {
    const record = (...commands: RunCommand[]) =>
      onRun(this.d.deps, binding.workspaceId, binding.runId, commands, { actor: ACTOR, correlationId });
    const refuse = async (reason: string, problem: DomainError): Promise<never> => {
      await record({ type: 'RecordOperationRefused', operationId, kind: operation.kind, target: operation.target, reason });
      throw problem;
    };

    let plan: GitPlan | undefined;
    try {
      plan = this.d.operations.plan(operation, remotePath);
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
    const timeoutMs = Math.max(1, Math.min(this.d.operationTimeoutMs, deadline - now.getTime()));
    const leaseId = `${operationId}:lease`;
    await record(requested, {
      type: 'GrantLease', leaseId, secretName: operation.secret, secretVersion: secret.version, operation: `gateway:${operationName(operation)}`,
      channel: channelOf(operation), expiresAt: leaseExpiry(now.toISOString(), timeoutMs, new Date(deadline).toISOString()),
    });
    // Releasing is idempotent: an npm install releases after its credential process, the final batch again.
    const release: RunCommand = { type: 'ReleaseLease', leaseId };
    // A revocation from now on aborts the operation and withholds whatever it produced.
    const revocation = cancelSource();
    const held = this.d.leases?.hold({ workspaceId: binding.workspaceId, runId: binding.runId, leaseId, secretName: operation.secret, secretVersion: secret.version, end: () => revocation.cancel() });
    let outcome: GatewayOutcome;
    try {
      outcome = await this.d.operations.run({ live, operation, plan, secret, redact, timeoutMs, release: () => record(release), signal: revocation.signal });
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
    return this.d.operations.respond(operationId, outcome, redact.redact);
  }

  private revokedDuring(name: string, version: number): DomainError {
    return new DomainError(GATEWAY_ERROR.SECRET_REVOKED, `Version ${version} of ${name} was revoked during the operation; it was stopped and its output withheld`, 'conflict');
  }

  /** A workload identity token for the bearer's run (docs/identity.md): 404 for an identity not defined, 403 for one the requester may not use. */
  async identityToken(binding: GatewayBinding, identity: string, correlationId: string): Promise<IdentityTokenResponse> {
    const sandbox = await this.sandboxFor(binding, correlationId, { operationId: this.d.deps.ids.next(), kind: IDENTITY_TOKEN_KIND, target: `identity:${identity}` });
    try {
      return await issueIdentityToken({ deps: this.d.deps, tokens: this.d.identityTokens }, binding, sandbox, identity, correlationId);
    } finally {
      await sandbox.leave();
    }
  }

  /** A body that did not parse or validate, from an authenticated caller: recorded on its run as a refusal. */
  async refuseRequest(binding: GatewayBinding, correlationId: string, code: string): Promise<void> {
    await onRun(this.d.deps, binding.workspaceId, binding.runId, { type: 'RecordOperationRefused', operationId: this.d.deps.ids.next(), kind: 'unparsed', target: '', reason: code }, { actor: ACTOR, correlationId });
  }

  /**
   * The bearer's sandbox, on this instance or shared from the host (gatewaySandbox.ts); `leave` once the operation
   * is done. None: 410 with the reason, recorded as a refusal.
   */
  private async sandboxFor(binding: GatewayBinding, correlationId: string, refused: { operationId: string; kind: string; target: string }): Promise<LiveSandbox & { leave: () => Promise<void> }> {
    const found = await sandboxForBearer(this.d.deps, this.d.sandboxes, this.d.adoption, binding);
    if (found.ok) return { ...found.live, leave: found.leave };
    await onRun(this.d.deps, binding.workspaceId, binding.runId, { type: 'RecordOperationRefused', ...refused, reason: `no live sandbox: ${found.reason}` }, { actor: ACTOR, correlationId }).catch(() => undefined);
    throw new DomainError(GATEWAY_ERROR.SANDBOX_GONE, `The run's sandbox cannot serve this bearer: ${found.reason}`, 'gone');
  }

  /** The sandbox's redactor, plus the value just resolved (it may be newer than what the sandbox's knows). */
  private redactorFor(live: LiveSandbox, name: string, secret: ResolvedSecret): OutputRedactor {
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
}
