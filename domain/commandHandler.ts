import type { DomainEvent, EventEnvelope, RecordedEvent } from './events';
import { ConcurrencyExhaustedError, VersionConflictError } from './errors';
import type { Clock } from './ports/clock';
import type { EventStore, ProjectionWrite } from './ports/eventStore';
import type { Random } from './ports/random';

/** The three pure functions of an aggregate. */
export interface Decider<S, C, E extends DomainEvent> {
  initialState(): S;
  evolve(state: S, event: E): S;
  decide(command: C, state: S): readonly E[];
}

export interface RetryPolicy {
  /** Total attempts, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 8, baseDelayMs: 5, maxDelayMs: 250 };

export interface CommandContext {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly random: Random;
  readonly retry?: RetryPolicy;
}

export interface CommandRequest<S, C, E extends DomainEvent> {
  readonly workspaceId: string;
  readonly streamId: string;
  readonly decider: Decider<S, C, E>;
  readonly command: C;
  readonly actor: string;
  readonly correlationId: string;
  /** Projection rows to write with the events, computed from the state after them. */
  readonly project?: (state: S, events: readonly E[]) => readonly ProjectionWrite[];
  /**
   * Side effect that must succeed before the events are recorded (for example writing the value to the
   * vault before `SecretSet` announces it). It runs again on a retry, so it must be idempotent per version.
   */
  readonly beforeAppend?: (events: readonly E[], stateBefore: S) => Promise<void>;
}

export interface CommandResult<S, E extends DomainEvent> {
  readonly state: S;
  readonly version: number;
  readonly records: readonly RecordedEvent<E>[];
}

export function fold<S, E extends DomainEvent>(decider: Pick<Decider<S, unknown, E>, 'initialState' | 'evolve'>, events: readonly E[]): S {
  return events.reduce((state, event) => decider.evolve(state, event), decider.initialState());
}

/** Full jitter: a random delay in [0, min(max, base·2^attempt)). */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: Random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.floor(random.next() * ceiling);
}

/**
 * The one command-handling loop: read the stream, fold, decide, append with the expected version;
 * on a version conflict re-read and retry with jittered backoff, a bounded number of times.
 * Domain errors from `decide` propagate unchanged (they are answers, not failures to retry).
 */
export async function handleCommand<S, C, E extends DomainEvent>(
  context: CommandContext,
  request: CommandRequest<S, C, E>,
): Promise<CommandResult<S, E>> {
  const policy = context.retry ?? defaultRetryPolicy;
  for (let attempt = 0; attempt < policy.maxAttempts; attempt++) {
    const stream = await context.store.readStream<E>(request.workspaceId, request.streamId);
    const state = fold(request.decider, stream.events);
    const events = request.decider.decide(request.command, state);
    if (events.length === 0) return { state, version: stream.version, records: [] };
    const meta = { at: context.clock.now().toISOString(), actor: request.actor, correlationId: request.correlationId };
    const envelopes: EventEnvelope<E>[] = events.map((event) => ({ ...event, meta }));
    const after = envelopes.reduce((s, e) => request.decider.evolve(s, e), state);
    if (request.beforeAppend) await request.beforeAppend(events, state);
    try {
      const result = await context.store.append({
        workspaceId: request.workspaceId,
        streamId: request.streamId,
        expectedVersion: stream.version,
        events: envelopes,
        projections: request.project?.(after, events) ?? [],
      });
      return { state: after, version: result.version, records: result.records as readonly RecordedEvent<E>[] };
    } catch (error) {
      if (!(error instanceof VersionConflictError)) throw error;
      if (attempt + 1 < policy.maxAttempts) await context.clock.sleep(backoffDelay(policy, attempt, context.random));
    }
  }
  throw new ConcurrencyExhaustedError(request.streamId, policy.maxAttempts);
}
