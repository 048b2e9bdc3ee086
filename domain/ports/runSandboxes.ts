import type { GuardPolicy } from '../launchGuard';
import type { OutputRedactor, SandboxHandle } from './sandboxHost';

/** A sandbox this host instance serves: one it seeded or took over, or one shared for a gateway operation. */
export interface LiveSandbox {
  readonly workspaceId: string;
  readonly runId: string;
  readonly handle: SandboxHandle;
  /** The workspace's redactor as of the run's start, refreshed when a lease resolves a newer value. */
  readonly redactor: OutputRedactor;
  readonly guard: GuardPolicy;
  /** ISO-8601. */
  readonly deadline: string;
}

/** The registry of live sandboxes in this process: the run lifecycle writes it, the gateway reads it. */
export interface RunSandboxes {
  get(runId: string): LiveSandbox | undefined;
  put(sandbox: LiveSandbox): void;
  remove(runId: string): void;
}
