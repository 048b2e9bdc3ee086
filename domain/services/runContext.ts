import type { GatewayBearers } from '../ports/gatewayBearers';
import type { LiveLeaseRegistry } from '../ports/liveLeases';
import type { RunProcesses } from '../ports/runProcesses';
import type { RunSandboxes } from '../ports/runSandboxes';
import type { LeftoverRun, OutputRedactor, RunningCommand, SandboxHost } from '../ports/sandboxHost';
import type { RefreshableRedactor } from '../redaction/refreshableRedactor';
import type { RunCommand, RunState } from '../run';
import type { ServiceDependencies } from './dependencies';
import type { RunAborts } from './runAborts';
import type { RunStores } from './runPorts';
import { onRun, readRunStream } from './runStream';
import { loadSecretMaterial } from './runSecrets';

/** Everything the lifecycle's activities use; built once per process by the composition root. */
export interface RunRuntime {
  readonly deps: ServiceDependencies;
  readonly stores: RunStores;
  readonly host: SandboxHost;
  /** The processes the steps launch in the host's sandboxes, with their credentials delivered. */
  readonly processes: RunProcesses;
  readonly sandboxes: RunSandboxes;
  readonly bearers: GatewayBearers;
  readonly aborts: RunAborts;
  /** The leases this instance's processes hold: what a revocation stops (shared with the gateway). */
  readonly leases: LiveLeaseRegistry;
  /** What the agent runtime gets as GATEWAY_URL. */
  readonly gatewayUrl: string;
  /** Removes what is left of a sandbox this process does not hold (its host instance died or the run moved): its disk, or its sandbox on a host agent. */
  readonly removeLeftovers: (sandboxId: string, run: LeftoverRun) => Promise<void>;
  readonly live: Map<string, LiveRun>;
}

/** What a run keeps in this process besides its sandbox: its redactor and its long-lived MCP servers. */
export interface LiveRun {
  readonly redactor: RefreshableRedactor;
  readonly servers: { readonly name: string; readonly process: RunningCommand; readonly done: Promise<void> }[];
}

export const LIFECYCLE_ACTOR = 'system:runLifecycle';

/** Largest transcript chunk kept per process, counted after redaction. */
export const MAX_CHUNK_CHARS = 256 * 1024;

/** One run as seen by one activity: its stream, its events, its redactor. */
export class RunContext {
  constructor(
    readonly runtime: RunRuntime,
    readonly workspaceId: string,
    readonly runId: string,
  ) {}

  async state(): Promise<RunState> {
    return (await readRunStream(this.runtime.deps.store, this.workspaceId, this.runId)).state;
  }

  async record(command: RunCommand): Promise<RunState> {
    const result = await onRun(this.runtime.deps, this.workspaceId, this.runId, command, { actor: LIFECYCLE_ACTOR, correlationId: this.runId });
    return result.state;
  }

  private fallback: OutputRedactor | undefined;

  /** The live run's redactor, or (after a restart) one built from the vault as of now. */
  async redactor(): Promise<OutputRedactor> {
    const live = this.runtime.live.get(this.runId);
    if (live) return live.redactor;
    this.fallback ??= (await loadSecretMaterial(this.runtime.deps, this.workspaceId)).redactor;
    return this.fallback;
  }

  /** Text for events and results: redacted first, truncated after. */
  async reason(text: string, max = 300): Promise<string> {
    const redacted = (await this.redactor()).redact(text);
    return redacted.length > max ? `${redacted.slice(0, max)}…` : redacted;
  }

  async transcript(text: string): Promise<void> {
    const redacted = (await this.redactor()).redact(text);
    const kept = redacted.length > MAX_CHUNK_CHARS ? `${redacted.slice(0, MAX_CHUNK_CHARS)}\n[truncated]\n` : redacted;
    await this.runtime.stores.transcripts.append(this.workspaceId, this.runId, kept);
  }
}
