import type { SecretUse } from '../runSpec';
import type { CancelSignal, CommandResult, ProcessIdentity, RunningCommand, SandboxHandle } from './sandboxHost';

/** A secret a run step resolved and recorded a lease for, as its channel delivers it to one process. */
export interface LeasedCredential {
  readonly secretName: string;
  readonly value: string;
  readonly use: SecretUse;
  /** For `env` and `file`: the env var name the process sees. */
  readonly as?: string;
  /** For `git` and `npm`: the host the credential is for. */
  readonly host?: string;
}

/** One process of a run step, with what it holds. */
export interface LeasedLaunch {
  readonly argv: readonly string[];
  readonly identity: ProcessIdentity;
  readonly credentials: readonly LeasedCredential[];
  /** Per-process env added after the guard (the gateway bearer): a delivery, not standing env. */
  readonly extraEnv?: Readonly<Record<string, string>>;
  /** Run in a private directory and hand what the process made to the workspace after it exits (CommandSpec.handOver). */
  readonly handOver?: { readonly into: string };
  readonly timeoutMs?: number;
  readonly signal?: CancelSignal;
}

/** One process an npm install step becomes, and whether it receives the step's token. */
export interface PlannedInstallProcess {
  readonly argv: readonly string[];
  readonly credentialed: boolean;
}

/**
 * The run steps' hands in a sandbox (infra/runs/sandboxRunProcesses.ts): the credential channels' checks of a
 * command (which resolve its program the way the host will run it) and launching a process with each credential
 * delivered through its channel to that process only. The steps (domain/services/runSteps.ts) decide and record
 * around it. A refused command throws an Error naming the secret and the offending part.
 */
export interface RunProcesses {
  /** Splits an npm install in two: the token-holding install without scripts, then the scripts without the token. */
  planNpmInstall(command: readonly string[], credential: { readonly secretName: string; readonly host?: string }): readonly PlannedInstallProcess[];
  /** Checks a credentialed install-time git command: the system git, one of `subcommands`, in its own directory. */
  checkCredentialedGit(secretName: string, command: readonly string[], subcommands: ReadonlySet<string>): void;
  /** Runs one process to its exit. */
  exec(sandbox: SandboxHandle, launch: LeasedLaunch): Promise<CommandResult>;
  /** Starts a long-lived process (an MCP server). */
  start(sandbox: SandboxHandle, launch: LeasedLaunch): Promise<RunningCommand>;
}
