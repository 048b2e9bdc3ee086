/**
 * One AbortController per run in this process. The cancel (or deadline) activity aborts it; every process a
 * step starts carries its signal, so the running command's process group is killed at once.
 */
export class RunAborts {
  private readonly controllers = new Map<string, AbortController>();

  signalFor(runId: string): AbortSignal {
    let controller = this.controllers.get(runId);
    if (!controller) {
      controller = new AbortController();
      this.controllers.set(runId, controller);
    }
    return controller.signal;
  }

  aborted(runId: string): boolean {
    return this.controllers.get(runId)?.signal.aborted ?? false;
  }

  abort(runId: string): void {
    const signal = this.signalFor(runId);
    if (!signal.aborted) this.controllers.get(runId)?.abort();
  }

  forget(runId: string): void {
    this.controllers.delete(runId);
  }
}
