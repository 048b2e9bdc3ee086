import type { GatewayOperation, GitPlan } from '../gateway';
import type { LiveSandbox } from './runSandboxes';
import type { CancelSignal, OutputRedactor } from './sandboxHost';
import type { ResolvedSecret } from './secretVault';
import type { LiveLeaseRegistry } from './liveLeases';

/** What the agent gets back from one gateway operation: redacted, cut to the limits. */
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

/** What an operation produced, before the gateway's final redaction and limits. */
export interface GatewayOutcome {
  readonly exitCode: number;
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly status?: number;
  readonly body?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One operation the gateway's use case has decided to run, under a lease already recorded. */
export interface GatewayRun {
  readonly live: LiveSandbox;
  readonly operation: GatewayOperation;
  readonly plan: GitPlan | undefined;
  readonly secret: ResolvedSecret;
  /** The sandbox's redactor plus the value just resolved. */
  readonly redact: OutputRedactor;
  readonly timeoutMs: number;
  /** Records the lease's release as soon as the credential process is done (npm runs scripts after it). */
  readonly release: () => Promise<unknown>;
  /** Raised when the secret's version is revoked mid-operation: the process or request stops at once. */
  readonly signal: CancelSignal;
}

/** The gateway's leases are this instance's live leases: a revocation aborts an operation in flight. */
export type GatewayLeases = LiveLeaseRegistry;

/**
 * The gateway's hands (infra/gateway): the exact command an operation becomes, running it with the credential
 * (git and npm in a credential process in the run's sandbox, http from this process), and the response within
 * its byte limits. The gateway use case (domain/services/gateway.ts) decides and records around it.
 */
export interface GatewayOperationRunner {
  /** The exact command, checked before anything is recorded as requested; a refused request throws a DomainError. */
  plan(operation: GatewayOperation, remotePath: string): GitPlan | undefined;
  run(request: GatewayRun): Promise<GatewayOutcome>;
  respond(operationId: string, outcome: GatewayOutcome, redact: (text: string) => string): GatewayResponse;
}
