import type { EgressAllowance, EgressTally } from '../egress';
import type { GuardPolicy } from '../launchGuard';

/**
 * Where a run's processes execute. The local process host implements it now; container hosts (Docker,
 * Kubernetes, Azure Container Apps sessions) are later adapters of the same port. Every process a host
 * starts goes through the launch guard first; credentials arrive only as per-process deliveries.
 */

/** What the host can promise. When `isolated` is false the caller records `IsolationDegraded` with `reason`. */
export interface SandboxCapabilities {
  readonly isolated: boolean;
  readonly reason?: string;
  /** Whether a RunSpec may keep its workspace on the workspace's volume between runs (`keptVolume`); others refuse it. */
  readonly keepsWorkspaceVolumes?: boolean;
}

/** The redactor's stream form (domain/redaction.ts): each call returns text that is safe to keep. */
export interface OutputRedactor {
  redact(text: string): string;
  stream(): { push(chunk: string): string; end(): string };
}

/** Where a channel may put credential material for one process (mirrors infra's DeliveryTarget). */
export interface ProcessCredentialTarget {
  readonly credentialDir: string;
  readonly uid?: number;
  readonly gid?: number;
}

/** One credential prepared for one process (mirrors infra's CredentialDelivery). */
export interface ProcessCredentialDelivery {
  readonly env: Readonly<Record<string, string>>;
  readonly argsAfterCommand: readonly string[];
  readonly stdin?: string;
  readonly paths: readonly string[];
  cleanup(): Promise<void>;
}

/** The subset of AbortSignal the host needs, so the domain stays free of DOM and Node types. */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface SandboxRequest {
  readonly runId: string;
  /** The run's workspace, for hosts that label what they create (a container's `disco-parrot.workspace`). */
  readonly workspaceId?: string;
  /** Template files, relative paths inside the workspace. */
  readonly files: Readonly<Record<string, string>>;
  /** The workspace's redactor: all output passes it before it is kept or returned. */
  readonly redactor: OutputRedactor;
  /** What the guard checks every launch against. */
  readonly guard: GuardPolicy;
  /** The RunSpec's top-level env: the standing env of every process of the sandbox (guarded). */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Opt-in: the workspace lives on a named volume that survives teardown (no credential is ever written there).
   * On a host that keeps volumes per workspace (Docker) it must be `workspaceId`: the volume is the run's own
   * workspace's, and naming any other is refused.
   */
  readonly keptVolume?: string;
  /** Where the sandbox may connect until `setEgress` says otherwise; omitted: any public name (no allow-list). */
  readonly egress?: EgressAllowance;
  /** Whose run it is and which pool it asks for (remote hosts place by it; a local host ignores it). */
  readonly placement?: SandboxPlacement;
}

/** `workspace`: only the workspace's own enrolled hosts; `managed`: the platform's pool; omitted: own hosts first, then managed. */
export interface SandboxPlacement {
  readonly workspaceId: string;
  readonly pool?: 'managed' | 'workspace';
}

export interface SandboxHandle {
  readonly sandboxId: string;
  readonly runId: string;
  /** The workspace directory as the sandbox's processes see it. */
  readonly workspace: string;
  readonly isolated: boolean;
  /** The host agent it lives on (remote hosts): recorded with `SandboxLaunched`, the only host asked for it later. */
  readonly hostId?: string;
}

/** The run a leftover sandbox belongs to (teardown on an instance that does not hold it). */
export interface LeftoverRun {
  readonly runId: string;
  readonly workspaceId: string;
  /** `SandboxLaunched.hostId`, when recorded. */
  readonly hostId?: string;
}

/**
 * What the run's events say of its sandbox, for `find`: a host that places sandboxes on machines asks only
 * `hostId`'s, and never accepts an answer naming another sandbox than `sandboxId`. Hosts with one engine ignore it.
 */
export interface ExpectedSandbox {
  readonly sandboxId?: string;
  readonly hostId?: string;
}

/**
 * `agent`: the agent runtime or anything it runs; `credential`: a process that holds a lease (an operation,
 * an MCP server), which the host runs under an identity the agent cannot inspect.
 */
export type ProcessIdentity = 'agent' | 'credential';

/**
 * Bytes for a process's stdin, pulled as the process takes them: the host asks for the next chunk only once the
 * previous one was written into the process's pipe, so a process that reads nothing holds its writer back. The
 * iteration's end is the end of input (the process reads EOF); a process that exits first stops the pulling.
 * Never a credential channel: a process whose delivery claims its stdin (a `stdin` lease) is refused one.
 */
export type ProcessInput = AsyncIterable<Uint8Array | string>;

export interface CommandSpec {
  readonly argv: readonly string[];
  readonly identity: ProcessIdentity;
  /** Extra standing env for this command (guarded like the sandbox's). */
  readonly env?: Readonly<Record<string, string>>;
  /** Prepares this process's deliveries, after the guard passed, for the target the host allocated. */
  readonly credentials?: (target: ProcessCredentialTarget) => Promise<readonly ProcessCredentialDelivery[]>;
  /** Working directory relative to the workspace. */
  readonly cwd?: string;
  /**
   * Instead of `cwd`: run in a fresh directory outside the workspace that only this process can write, and
   * after it exits with status 0 move what it left there into `into` (relative to the workspace; `.` for the
   * workspace itself), as the agent, never replacing an existing entry. For a credential process that
   * creates something (a clone): nothing the agent writes while it runs can reach what it reads.
   */
  readonly handOver?: { readonly into: string };
  readonly timeoutMs?: number;
  /** Per stream, counted after redaction. */
  readonly maxOutputBytes?: number;
  readonly signal?: CancelSignal;
  /**
   * Output as it arrives, already redacted (the result still carries all of it at exit). Best effort and
   * bounded: a host may coalesce chunks, and stops calling once a stream passes its limit.
   */
  readonly onOutput?: (stream: 'stdout' | 'stderr', text: string) => void;
  /** What the process reads on stdin; omitted, its stdin is empty (or its delivery's, for a `stdin` lease). */
  readonly stdin?: ProcessInput;
}

export interface CommandResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  /** Redacted, then truncated. */
  readonly stdout: string;
  readonly stderr: string;
  readonly truncated: boolean;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
}

/** A long-lived process (an MCP server, the agent runtime). */
export interface RunningCommand {
  readonly pid: number;
  readonly exited: Promise<CommandResult>;
  stop(): Promise<CommandResult>;
}

export interface SandboxHost {
  readonly capabilities: SandboxCapabilities;
  create(request: SandboxRequest): Promise<SandboxHandle>;
  exec(handle: SandboxHandle, command: CommandSpec): Promise<CommandResult>;
  start(handle: SandboxHandle, command: CommandSpec): Promise<RunningCommand>;
  /** Stops every process of the sandbox and removes its disk (except a kept volume); idempotent. */
  teardown(handle: SandboxHandle): Promise<void>;
  /**
   * Where the sandbox's processes may connect from now on (the run's current phase). A host that cannot
   * enforce it (no network isolation) ignores it; the run records `IsolationDegraded` already.
   */
  setEgress(handle: SandboxHandle, allowance: EgressAllowance): void;
  /** The egress decisions since the previous call (undefined where the host has no egress proxy). */
  drainEgress(handle: SandboxHandle): EgressTally | undefined;
  /**
   * Removes what crashed host processes left behind (never a sandbox of a live process); returns how many. The
   * sweep calls it; a host whose sandboxes cannot outlive their process leaves it out.
   */
  removeOrphans?(runIsOver: (runId: string) => Promise<boolean>): Promise<number>;
  /**
   * Removes what a dead instance left of one sandbox (its disk, its container, its processes on a host agent); a
   * host without leftovers leaves it out. `run`: whose sandbox it is, as the run's events say (a remote host
   * reaches only the recorded machine, or the run's pools for an older run).
   */
  removeLeftover?(sandboxId: string, run?: LeftoverRun): Promise<void>;
  /** Purge: removes the workspace's kept volumes; returns how many. A host that keeps none leaves it out. */
  removeWorkspaceVolumes?(workspaceId: string): Promise<number>;
}

/**
 * A host whose sandboxes outlive the instance that made them (a container): a run's sandbox is found again by
 * its run id, and another instance adopts it with the run's redactor and guard, so a run survives a restart
 * or a move between phases.
 */
export interface RecoverableSandboxHost extends SandboxHost {
  /**
   * `workspaceId`: the run's, where a host looks among its pools' machines (a remote host asks no other
   * workspace's); `expected`: what the run's events name (a remote host asks only the recorded machine).
   */
  find(runId: string, workspaceId?: string, expected?: ExpectedSandbox): Promise<SandboxHandle | undefined>;
  /**
   * Takes the sandbox over. Processes holding a lease the previous instance started (credential processes, and any
   * given a delivery, such as a turn holding the model key) are stopped before this
   * resolves (nobody supervises their leases any more); the caller ends those leases and starts again what the
   * run still needs.
   */
  adopt(handle: SandboxHandle, request: Pick<SandboxRequest, 'redactor' | 'guard' | 'env' | 'egress'>): Promise<SandboxHandle>;
  /**
   * Serves processes in the sandbox beside the instance that holds it, which may be running the run's processes
   * at this moment (the gateway answering an agent whose turn runs on another instance): nothing of the holder's
   * is stopped, its doors and egress stay with it, and no credential uid either of them used is used again.
   * Until `leave`; the holder keeps the sandbox.
   */
  share(handle: SandboxHandle, request: Pick<SandboxRequest, 'redactor' | 'guard' | 'env'>): Promise<SharedSandbox>;
}

/** A sandbox served beside its holder for as long as one operation needs it (`RecoverableSandboxHost.share`). */
export interface SharedSandbox {
  readonly handle: SandboxHandle;
  /** Stops serving it on this instance (its processes have ended); idempotent. */
  leave(): Promise<void>;
}

export function isRecoverable(host: SandboxHost): host is RecoverableSandboxHost {
  const candidate = host as Partial<RecoverableSandboxHost>;
  return typeof candidate.find === 'function' && typeof candidate.adopt === 'function';
}
