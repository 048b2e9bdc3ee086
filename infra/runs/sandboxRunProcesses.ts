import type { LeasedCredential, LeasedLaunch, PlannedInstallProcess, RunProcesses } from '../../domain/ports/runProcesses';
import type { CommandResult, CommandSpec, ProcessCredentialDelivery, RunningCommand, SandboxHandle, SandboxHost } from '../../domain/ports/sandboxHost';
import { assertGitCommand, assertPrivateGitCommand, planPackageInstall, preparerFor } from '../sandbox/channels';

/** The run steps' processes on a sandbox host, each credential prepared by its channel for that one process. */
export class SandboxRunProcesses implements RunProcesses {
  constructor(private readonly host: SandboxHost) {}

  planNpmInstall(command: readonly string[], credential: { readonly secretName: string; readonly host?: string }): readonly PlannedInstallProcess[] {
    const request = { secretName: credential.secretName, value: '', use: 'npm' as const, ...(credential.host ? { host: credential.host } : {}) };
    return planPackageInstall(command, request).map((p) => ({ argv: p.command, credentialed: p.credential !== undefined }));
  }

  checkCredentialedGit(secretName: string, command: readonly string[], subcommands: ReadonlySet<string>): void {
    assertGitCommand(secretName, command, subcommands);
    assertPrivateGitCommand(secretName, command);
  }

  exec(sandbox: SandboxHandle, launch: LeasedLaunch): Promise<CommandResult> {
    return this.host.exec(sandbox, commandOf(launch));
  }

  start(sandbox: SandboxHandle, launch: LeasedLaunch): Promise<RunningCommand> {
    return this.host.start(sandbox, commandOf(launch));
  }
}

function commandOf(launch: LeasedLaunch): CommandSpec {
  return {
    argv: launch.argv,
    identity: launch.identity,
    credentials: deliveriesFor(launch.credentials, launch.extraEnv),
    ...(launch.handOver ? { handOver: launch.handOver } : {}),
    ...(launch.timeoutMs !== undefined ? { timeoutMs: launch.timeoutMs } : {}),
    ...(launch.signal ? { signal: launch.signal } : {}),
  };
}

function deliveriesFor(credentials: readonly LeasedCredential[], extraEnv: Readonly<Record<string, string>> | undefined) {
  return async (target: { credentialDir: string; uid?: number; gid?: number }): Promise<readonly ProcessCredentialDelivery[]> => {
    const deliveries: ProcessCredentialDelivery[] = [];
    for (const credential of credentials) deliveries.push(await preparerFor(credential)(credential, target));
    if (extraEnv && Object.keys(extraEnv).length > 0) deliveries.push({ env: extraEnv, argsAfterCommand: [], paths: [], cleanup: async () => {} });
    return deliveries;
  };
}
