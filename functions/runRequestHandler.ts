import { isDomainError } from '../domain/errors';
import type { ServiceDependencies } from '../domain/services/dependencies';
import type { RunStarterPorts } from '../domain/services/runPorts';
import { RUN_REQUEST_ERROR, startRunFromMessage } from '../domain/services/runStarter';
import { type RunRequestClaims, RUN_REQUEST_REFUSAL, RunRequestRefused, runIdForRequest, specDigest } from '../infra/messaging/runRequestToken';
import { describeUnexpected } from '../infra/system/describeUnexpected';
import type { PoisonSink } from '../infra/messaging/poisonSink';
import type { RunRequestSchema } from '../infra/messaging/runRequestMessage';
import { describeIssues, fingerprint, messageText } from '../infra/messaging/runRequestMessage';

export type RunMessageResult =
  | { readonly outcome: 'started'; readonly runId: string; readonly workspaceId: string }
  | { readonly outcome: 'poisoned'; readonly code: string; readonly reason: string };

export interface RunRequestHandlerOptions {
  readonly deps: ServiceDependencies;
  readonly ports: RunStarterPorts;
  readonly schema: RunRequestSchema;
  /** Checks the producer's token (`runRequestVerifier` over the registered producers' keys). */
  readonly verify: (token: string) => Promise<RunRequestClaims>;
  readonly poison: PoisonSink;
  readonly log: { info(text: string): void; warn(text: string): void };
}

/**
 * Domain answers that no retry can change: a malformed or refused spec, a workspace the user cannot see, a
 * role it lacks, a request id taken by someone else, a record too large. Everything else (storage down,
 * contention exhausted) is transient: it is thrown, so the trigger redelivers and, after its maximum number
 * of attempts, the host (local) or the broker (Service Bus) dead-letters it.
 */
const PERMANENT_KINDS = new Set(['invalid', 'not_found', 'forbidden', 'too_large', 'precondition']);
const PERMANENT_CODES = new Set<string>([RUN_REQUEST_ERROR.ID_REUSED, RUN_REQUEST_ERROR.REPLAYED]);

/**
 * The one handler behind both run-request triggers. A permanently bad message is written to the poison sink
 * with its reason and then completes (returns), so it is neither retried nor dropped silently.
 */
export async function handleRunRequestMessage(raw: unknown, options: RunRequestHandlerOptions, messageId?: string): Promise<RunMessageResult> {
  const received = messageText(raw);
  const original = fingerprint(received.text);
  const reject = async (code: string, reason: string, extra: Partial<Record<'workspaceId' | 'requestedBy' | 'requestId', string>> & { issues?: string[] } = {}): Promise<RunMessageResult> => {
    await options.poison.poison({ code, reason, original, ...(messageId === undefined ? {} : { messageId }), ...extra });
    options.log.warn(`run request ${messageId ?? '(no id)'} poisoned: ${code}: ${reason}`);
    return { outcome: 'poisoned', code, reason };
  };
  if ('error' in received) return reject('RUN_REQUEST.MALFORMED', received.error);
  const { token, spec: rawSpec, ...envelope } = isObject(received.json) ? received.json : { token: undefined, spec: undefined };
  // Who asked is proven by a registered producer's signature, or nothing starts (docs/messaging.md).
  if (typeof token !== 'string')
    return reject(RUN_REQUEST_REFUSAL.UNSIGNED, 'unsigned: the message carries no producer token; a run request must be signed by a registered producer', identityOf(received.json));
  let claims: RunRequestClaims;
  try {
    claims = await options.verify(token);
  } catch (error) {
    if (error instanceof RunRequestRefused) return reject(error.code, error.message, identityOf(received.json));
    throw error;
  }
  const parsed = options.schema.safeParse({ ...envelope, spec: rawSpec });
  const signed = identityOf({ workspaceId: claims.workspaceId, requestedBy: claims.requestedBy, requestId: claims.requestId });
  if (!parsed.success) {
    const issues = describeIssues(parsed.error);
    return reject('RUN_REQUEST.MALFORMED', `the message does not match the run request schema: ${issues.join('; ')}`, { ...signed, issues });
  }
  const message = parsed.data;
  const differing: string[] = (['workspaceId', 'requestedBy', 'requestId'] as const).filter((k) => message[k] !== claims[k]);
  if (specDigest(rawSpec) !== claims.specDigest) differing.push('spec');
  if (differing.length > 0)
    return reject(RUN_REQUEST_REFUSAL.MISMATCH, `mismatched: ${differing.join(', ')} differ from what the producer signed`, signed);
  const who = signed;
  try {
    const result = await startRunFromMessage(options.deps, options.ports, { ...message, runId: runIdForRequest(message.workspaceId, message.requestId) });
    options.log.info(`run request ${message.requestId} in ${message.workspaceId}: ${result.outcome} run ${result.runId}`);
    return { ...result, workspaceId: message.workspaceId };
  } catch (error) {
    if (isDomainError(error) && (PERMANENT_KINDS.has(error.kind) || PERMANENT_CODES.has(error.code)))
      return reject(error.code, describeDomainError(error.kind, error.message), who);
    options.log.warn(`run request ${message.requestId} failed, will be retried: ${describeUnexpected(error)}`);
    throw error;
  }
}

function describeDomainError(kind: string, message: string): string {
  // A non-member and a missing workspace answer alike (404 over HTTP), so the reason does not tell them apart.
  return kind === 'not_found' && /^Workspace/.test(message) ? 'unauthorised: the requesting user is not a member of this workspace (or it does not exist)' : message;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The identity fields of a message that failed validation, when they are plain short strings. */
function identityOf(json: unknown): Partial<Record<'workspaceId' | 'requestedBy' | 'requestId', string>> {
  if (typeof json !== 'object' || json === null) return {};
  const out: Partial<Record<'workspaceId' | 'requestedBy' | 'requestId', string>> = {};
  for (const key of ['workspaceId', 'requestedBy', 'requestId'] as const) {
    const value = (json as Record<string, unknown>)[key];
    if (typeof value === 'string' && /^[A-Za-z0-9._@:-]{1,128}$/.test(value)) out[key] = value;
  }
  return out;
}
