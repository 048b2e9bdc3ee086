import { type CancelSource, cancelSource } from '../cancelSignal';
import type { CancelSignal } from '../ports/sandboxHost';

/**
 * One cancellation per run in this process. The cancel (or deadline) activity raises it; every process a
 * step starts carries its signal, so the running command's process group is killed at once.
 */
export type AbortReason = 'cancelled' | 'deadline exceeded';

export class RunAborts {
  private readonly sources = new Map<string, CancelSource>();
  private readonly reasons = new Map<string, AbortReason>();

  signalFor(runId: string): CancelSignal {
    let source = this.sources.get(runId);
    if (!source) {
      source = cancelSource();
      this.sources.set(runId, source);
    }
    return source.signal;
  }

  aborted(runId: string): boolean {
    return this.sources.get(runId)?.signal.aborted ?? false;
  }

  /** The first reason sticks: teardown after a deadline must not turn the killed step into "cancelled". */
  abort(runId: string, reason: AbortReason = 'cancelled'): void {
    this.signalFor(runId);
    if (!this.reasons.has(runId)) this.reasons.set(runId, reason);
    this.sources.get(runId)?.cancel();
  }

  /** Why the run's processes were killed: a step they belonged to fails with exactly this reason. */
  reasonOf(runId: string): AbortReason {
    return this.reasons.get(runId) ?? 'cancelled';
  }

  forget(runId: string): void {
    this.sources.delete(runId);
    this.reasons.delete(runId);
  }
}
