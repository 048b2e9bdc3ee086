import { type CancelSource, cancelSource } from '../cancelSignal';
import type { CancelSignal } from '../ports/sandboxHost';

/**
 * One cancellation per run in this process. The cancel (or deadline) activity raises it; every process a
 * step starts carries its signal, so the running command's process group is killed at once.
 */
export class RunAborts {
  private readonly sources = new Map<string, CancelSource>();

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

  abort(runId: string): void {
    this.signalFor(runId);
    this.sources.get(runId)?.cancel();
  }

  forget(runId: string): void {
    this.sources.delete(runId);
  }
}
