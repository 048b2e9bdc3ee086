import { assertGitRef, type GatewayOperation, type GitPlan } from '../../domain/gateway';
import { DomainError } from '../../domain/errors';
import type { LiveSandbox } from '../../domain/ports/runSandboxes';
import type { CommandResult, CommandSpec, ProcessCredentialDelivery, ProcessCredentialTarget, SandboxHost } from '../../domain/ports/sandboxHost';
import { planPackageInstall, preparerFor } from '../sandbox/channels';
import type { CredentialRequest } from '../sandbox/credentialDelivery';
import { remoteScopedGitConfig, withGitConfig } from './gitHardening';
import { isolateGitDelivery, workspaceRepository, type IsolatedGitDelivery } from './gitIsolation';

/**
 * git and npm operations inside the run's sandbox: the credential process gets the channel's delivery (for
 * fetch and push also a private git directory, see gitIsolation.ts); anything that needs the agent's
 * repository state or runs scripts happens in agent processes without the credential.
 */

export interface SandboxRun {
  readonly host: SandboxHost;
  readonly live: LiveSandbox;
  readonly request: CredentialRequest;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  /** Ends the lease as soon as the credential process has exited. */
  readonly release: () => Promise<unknown>;
  /** Aborted when the secret is revoked mid-operation: the credential process is stopped at once. */
  readonly signal?: AbortSignal;
}

const OBJECT_ID = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

function failed(step: CommandResult): boolean {
  return step.exitCode !== 0;
}

/** Runs git as the agent (no credential), for what only the agent's repository can answer. */
async function agentGit(run: SandboxRun, cwd: string | undefined, args: readonly string[]): Promise<CommandResult> {
  return run.host.exec(run.live.handle, {
    argv: ['git', '-c', 'safe.directory=*', ...args],
    identity: 'agent',
    timeoutMs: run.timeoutMs,
    maxOutputBytes: 4096,
    ...(cwd !== undefined ? { cwd } : {}),
  });
}

/** `src[:dst]` → the object id to push and the full ref to update, resolved in the agent's repository. */
async function resolvePush(run: SandboxRun, cwd: string | undefined, ref: string): Promise<{ refspec?: string; failure?: CommandResult }> {
  const [src = 'HEAD', given] = ref.split(':');
  const parsed = await agentGit(run, cwd, ['rev-parse', '--verify', '--quiet', '--end-of-options', src]);
  const id = parsed.stdout.trim();
  if (failed(parsed) || !OBJECT_ID.test(id)) return { failure: { ...parsed, exitCode: parsed.exitCode || 1, stderr: `${parsed.stderr}gateway: ${src} does not name an object in the repository\n` } };
  let dst = given;
  if (dst === undefined) {
    if (src !== 'HEAD') dst = src;
    else {
      const branch = await agentGit(run, cwd, ['symbolic-ref', '--quiet', 'HEAD']);
      if (failed(branch)) return { failure: { ...branch, exitCode: branch.exitCode || 1, stderr: `${branch.stderr}gateway: HEAD is detached; give ref as HEAD:<branch>\n` } };
      dst = branch.stdout.trim();
    }
  }
  const full = dst.startsWith('refs/') ? dst : `refs/heads/${dst}`;
  try {
    assertGitRef(full);
  } catch {
    throw new DomainError('GATEWAY.INVALID_OPERATION', 'the branch to push to is not a valid ref name', 'invalid');
  }
  return { refspec: `${id}:${full}` };
}

/** Where a credential process works: a workspace directory, or a private one handed over afterwards. */
type Workdir = Pick<CommandSpec, 'cwd' | 'handOver'>;

async function credentialStep(run: SandboxRun, argv: readonly string[], workdir: Workdir, isolate?: (d: ProcessCredentialDelivery, t: ProcessCredentialTarget) => Promise<ProcessCredentialDelivery>): Promise<CommandResult> {
  const credentials = async (target: ProcessCredentialTarget) => {
    const delivery = await preparerFor(run.request)(run.request, target);
    return [isolate ? await isolate(delivery, target) : delivery];
  };
  return run.host.exec(run.live.handle, { argv, identity: 'credential', credentials, timeoutMs: run.timeoutMs, maxOutputBytes: run.maxOutputBytes, ...workdir, ...(run.signal ? { signal: run.signal } : {}) });
}

const inCwd = (cwd: string | undefined): Workdir => (cwd !== undefined ? { cwd } : {});

export async function runGit(run: SandboxRun, op: Extract<GatewayOperation, { kind: 'git' }>, plan: GitPlan): Promise<CommandResult[]> {
  const harden = (delivery: ProcessCredentialDelivery) => withGitConfig(delivery, remoteScopedGitConfig(op.remote));
  if (op.action === 'clone') {
    // Made in a private directory: the new repository's config, hooks and attributes are written and read
    // where the agent cannot reach them, and the repository is the agent's only once git has exited.
    return [await credentialStep(run, plan.argv, { handOver: { into: plan.handOverInto ?? '.' } }, async (d) => harden(d))];
  }
  const repository = await workspaceRepository(run.live.handle.workspace, plan.cwd);
  let argv = plan.argv;
  if (op.action === 'push') {
    const resolved = await resolvePush(run, plan.cwd, op.ref ?? 'HEAD');
    if (resolved.failure) return [resolved.failure];
    argv = ['git', 'push', '--quiet', op.remote, resolved.refspec ?? ''];
  }
  let isolated: IsolatedGitDelivery | undefined;
  const result = await credentialStep(run, argv, inCwd(plan.cwd), async (d, target) => {
    isolated = await isolateGitDelivery(harden(d), target, repository);
    return isolated.delivery;
  });
  const fetchHead = isolated?.fetchHead() ?? '';
  if (op.action !== 'fetch' || failed(result) || fetchHead === '') return [result];
  await run.release();
  // What `git fetch` leaves for the agent: FETCH_HEAD, written by the agent itself (it names objects and the URL).
  const written = await run.host.exec(run.live.handle, {
    argv: ['sh', '-c', 'printf %s "$1" > .git/FETCH_HEAD', 'sh', fetchHead], identity: 'agent', timeoutMs: run.timeoutMs, maxOutputBytes: 4096,
    ...(plan.cwd !== undefined ? { cwd: plan.cwd } : {}),
  });
  return [{ ...result, stdout: result.stdout + fetchHead }, written];
}

export async function runNpm(run: SandboxRun, plan: { argv: readonly string[]; cwd?: string }): Promise<CommandResult[]> {
  const [install, ...scripts] = planPackageInstall(plan.argv, run.request);
  const results: CommandResult[] = [];
  try {
    results.push(await credentialStep(run, install?.command ?? [], inCwd(plan.cwd)));
  } finally {
    // The scripts that follow run without the credential: the lease ends with its process.
    await run.release();
  }
  for (const step of scripts) {
    if (results.some(failed)) break;
    results.push(await run.host.exec(run.live.handle, {
      argv: step.command, identity: 'agent', timeoutMs: run.timeoutMs, maxOutputBytes: run.maxOutputBytes, ...(plan.cwd !== undefined ? { cwd: plan.cwd } : {}),
    }));
  }
  return results;
}
