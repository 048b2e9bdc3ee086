import type { LiveSandbox, RunSandboxes } from '../../domain/ports/runSandboxes';

/** The sandboxes this process holds (seeded or taken over); another instance reaches them through the host. */
export class InMemoryRunSandboxes implements RunSandboxes {
  private readonly byRun = new Map<string, LiveSandbox>();

  get(runId: string): LiveSandbox | undefined {
    return this.byRun.get(runId);
  }

  put(sandbox: LiveSandbox): void {
    this.byRun.set(sandbox.runId, sandbox);
  }

  remove(runId: string): void {
    this.byRun.delete(runId);
  }
}
