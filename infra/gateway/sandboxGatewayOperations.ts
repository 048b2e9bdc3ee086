import { describeHost, planGit, planNpm, type GatewayOperation, type GitPlan } from '../../domain/gateway';
import type { GatewayOperationRunner, GatewayOutcome, GatewayResponse, GatewayRun } from '../../domain/ports/gatewayOperations';
import type { CancelSignal, CommandResult, SandboxHost } from '../../domain/ports/sandboxHost';
import { TRUNCATION_MARKER, utf8Prefix } from '../redaction/truncate';
import { assertGitCommand } from '../sandbox/channels';
import type { CredentialRequest } from '../sandbox/credentialDelivery';
import { runGit, runNpm } from './sandboxOperations';
import { performHttpOperation } from './httpOperation';

export interface GatewayLimits {
  readonly operationTimeoutMs: number;
  /** Per stream (stdout, stderr, http body), after redaction. */
  readonly maxOutputBytes: number;
  readonly maxHttpResponseBytes: number;
}

export const DEFAULT_GATEWAY_LIMITS: GatewayLimits = { operationTimeoutMs: 120_000, maxOutputBytes: 64 * 1024, maxHttpResponseBytes: 1024 * 1024 };

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

function outcomeOf(results: readonly CommandResult[], limit: number, value: string): GatewayOutcome {
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

/** The domain's CancelSignal as the AbortSignal fetch and the host take. */
function abortSignalOf(signal: CancelSignal): AbortSignal {
  const controller = new AbortController();
  if (signal.aborted) controller.abort();
  else signal.addEventListener('abort', () => controller.abort(), { once: true });
  return controller.signal;
}

/** git and npm in a credential process inside the run's sandbox, http from this process; output within limits. */
export class SandboxGatewayOperations implements GatewayOperationRunner {
  constructor(
    private readonly host: SandboxHost,
    private readonly limits: GatewayLimits,
    private readonly fetchImpl?: typeof fetch,
  ) {}

  /** The exact command, checked before anything is recorded as requested (a malformed request is a 400). */
  plan(operation: GatewayOperation, remotePath: string): GitPlan | undefined {
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

  async run({ live, operation, plan, secret, redact, timeoutMs, release, signal: revoked }: GatewayRun): Promise<GatewayOutcome> {
    const signal = abortSignalOf(revoked);
    if (operation.kind === 'http') {
      try {
        const result = await performHttpOperation(operation, secret.value, { timeoutMs, maxResponseBytes: this.limits.maxHttpResponseBytes, signal }, () => redact.stream(), this.fetchImpl);
        return { exitCode: 0, ok: result.status >= 200 && result.status < 300, stdout: '', stderr: '', status: result.status, body: result.body, headers: result.headers, truncated: result.truncated };
      } catch (error) {
        const cause = (error as { cause?: { code?: unknown } }).cause?.code;
        return { exitCode: 1, ok: false, stdout: '', stderr: `gateway: the request failed: ${(error as Error).name}${typeof cause === 'string' ? ` (${cause})` : ''}\n`, truncated: false };
      }
    }

    const use = operation.kind === 'git' ? 'git' : 'npm';
    const request: CredentialRequest = { secretName: operation.secret, value: secret.value, use, host: `${operation.destination.protocol}://${describeHost(operation.destination)}` };
    const sandboxRun = { host: this.host, live, request, timeoutMs, maxOutputBytes: this.limits.maxOutputBytes, release, signal };
    const steps = plan ?? { argv: [] };
    const results = operation.kind === 'git' ? await runGit(sandboxRun, operation, steps) : await runNpm(sandboxRun, steps);
    return outcomeOf(results, this.limits.maxOutputBytes, secret.value);
  }

  respond(operationId: string, outcome: GatewayOutcome, redact: (text: string) => string): GatewayResponse {
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
