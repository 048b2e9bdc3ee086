import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { OWNER_FILE, removeOrphanedSandboxes } from './orphanedSandboxes';
import os from 'node:os';
import path from 'node:path';
import type { EgressAllowance, EgressTally } from '../../domain/egress';
import { DomainError } from '../../domain/errors';
import { checkRunSpecEnv, checkValues, templateFileEntries, type GuardPolicy } from '../../domain/launchGuard';
import type {
  CommandResult,
  CommandSpec,
  OutputRedactor,
  RunningCommand,
  SandboxCapabilities,
  SandboxHandle,
  SandboxHost,
  SandboxRequest,
} from '../../domain/ports/sandboxHost';
import type { CredentialDelivery, DeliveryTarget } from './credentialDelivery';
import { guardedLauncher, type GuardedLauncher, type LaunchedProcess } from './guardedLauncher';
import { LaunchRefusedError } from './launchErrors';
import { enterPrefix, plainPrefix, processesIn, startPidNamespace, type Identity, type PidNamespace } from './pidNamespace';
import { chownTree, insideRoot, writeTemplateFiles } from './sandboxFiles';
import { sandboxBinds } from './sandboxRoot';
import { DEFAULT_SANDBOX_LIMITS, detectCgroupSupport, SandboxCgroup, type CgroupSupport, type SandboxLimits } from './sandboxCgroup';
import { EGRESS_PROXY_URL, openDoors, type Doors } from './egress/doors';
import type { EgressCounts, Resolver } from './egress/egressProxy';
import { CREDENTIAL_PROCESS_ENV, resolveTrustedProgram } from './trustedPrograms';
import { claimUidBlock, type UidBlock } from './uidBlocks';

/**
 * Sandboxes as local processes: a scratch directory, a scrubbed env, and — when this host runs as root —
 * a pid + mount namespace per sandbox with an unprivileged uid per role (DESIGN.md §1.7). Not running as
 * root, it still scrubs env and separates directories, but says so at start and reports isolated=false so
 * every run records IsolationDegraded; a production configuration refuses this host.
 */

export interface LocalProcessSandboxHostOptions {
  /** Scratch directories and kept volumes. Default: <tmpdir>/dp-sandboxes. */
  readonly root?: string;
  /** Per-process credential directories, on a tmpfs. Default: /dev/shm/dp-credentials. */
  readonly credentialRoot?: string;
  /** 'auto' isolates when root and able to; 'off' never does (the degraded mode, for hosts that cannot). */
  readonly isolation?: 'auto' | 'off';
  readonly launcher?: GuardedLauncher;
  /** The gateway as this host reaches it; isolated sandboxes get a door to it at the same loopback URL. */
  readonly gatewayUrl?: string;
  /** The egress proxy's policy for isolated sandboxes (egress/egressProxy.ts). */
  readonly egress?: {
    readonly ports?: readonly number[];
    readonly platformHosts?: readonly string[];
    /** Tests only (a production configuration refuses the setting): loopback `host:port` servers sandboxes may reach. */
    readonly testServers?: () => readonly string[];
    /** Tests only: the egress proxy resolves names with this instead of the system resolver. */
    readonly resolve?: Resolver;
  };
  /** Per-sandbox pids, memory and CPU limits (sandboxCgroup.ts); default DEFAULT_SANDBOX_LIMITS. */
  readonly limits?: SandboxLimits;
  readonly warn?: (message: string) => void;
}

/** Env vars a sandbox process may inherit from the host; everything else is dropped. */
export const INHERITED_ENV = ['PATH', 'LANG', 'LC_ALL', 'TZ', 'TERM'] as const;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const VOLUME_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export class SandboxGoneError extends DomainError {
  constructor(readonly sandboxId: string) {
    super('SANDBOX.GONE', `sandbox ${sandboxId} is torn down or unknown`, 'conflict');
    this.name = 'SandboxGoneError';
  }
}

/** A delivery put credential material somewhere other than its process's credential directory. */
export class DeliveryOutsideCredentialDirError extends DomainError {
  constructor() {
    super('SANDBOX.DELIVERY_OUTSIDE_CREDENTIAL_DIR', 'a delivery wrote outside its credential directory; refused and cleaned up', 'forbidden');
    this.name = 'DeliveryOutsideCredentialDirError';
  }
}

interface Sandbox {
  readonly handle: SandboxHandle;
  readonly root: string;
  readonly credentialDir: string;
  readonly keptVolume: boolean;
  readonly redactor: OutputRedactor;
  readonly guard: GuardPolicy;
  readonly env: Readonly<Record<string, string>>;
  /** How a process finds the egress proxy (isolated only): a credential process gets this and nothing else of `env`. */
  readonly proxyEnv: Readonly<Record<string, string>>;
  readonly uids?: UidBlock;
  readonly ns?: PidNamespace;
  readonly doors?: Doors;
  readonly cgroup?: SandboxCgroup;
  /** What the egress proxy lets through now; read by the proxy at every request. */
  egress: EgressAllowance | undefined;
  readonly running: Set<LaunchedProcess>;
  processCount: number;
  tornDown: boolean;
}

/** What a test or a sweep may inspect about a live sandbox. */
export interface SandboxInspection {
  readonly root: string;
  readonly credentialDir: string;
  readonly nsId?: string;
  readonly groupGid?: number;
  readonly agentUid?: number;
  /** The sandbox's cgroup directories, one per hierarchy (isolated with cgroups only). */
  readonly cgroupDirs?: readonly string[];
  /** Egress proxy decisions so far (isolated sandboxes only). */
  readonly egress?: EgressCounts;
}

function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH };
  for (const key of INHERITED_ENV) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return env;
}

/**
 * Moves every entry of $1 into the workspace directory $2, as the agent; an entry that already exists there
 * is refused, never replaced or merged. The names are the process's own; the staging path is never printed.
 */
export const HAND_OVER_SCRIPT = `mkdir -p -- "$2" || exit 1
for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  name=\${entry##*/}
  if [ -e "$2/$name" ] || [ -L "$2/$name" ]; then echo "hand-over: $2/$name already exists in the workspace" >&2; exit 1; fi
  mv -- "$entry" "$2/$name" || exit 1
done`;
const HAND_OVER_TIMEOUT_MS = 300_000;

/**
 * A process's private working directory: inside its own 0700 directory, so nothing else of the sandbox can
 * reach it while it runs. Under isolation it belongs to the sandbox group with setgid, so what the process
 * creates there is group-accessible and the agent can move it once the host has handed the directory over.
 */
async function makePrivateDir(dir: string, identity: Identity | undefined): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  if (identity) {
    await chown(dir, identity.uid, identity.groupGid);
    await chmod(dir, 0o2770);
  }
}

function within(parent: string, child: string): boolean {
  const resolved = path.resolve(child);
  return resolved === parent || resolved.startsWith(parent + path.sep);
}

export class LocalProcessSandboxHost implements SandboxHost {
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly launcher: GuardedLauncher;
  private readonly root: string;
  private readonly credentialRoot: string;

  private constructor(
    readonly capabilities: SandboxCapabilities,
    private readonly options: LocalProcessSandboxHostOptions,
    private readonly cgroups?: Extract<CgroupSupport, { available: true }>,
    /** Namespaces and uids; without cgroup limits the host still uses them, but reports isolated=false. */
    private readonly namespaces = capabilities.isolated,
  ) {
    this.launcher = options.launcher ?? guardedLauncher;
    this.root = path.resolve(options.root ?? path.join(os.tmpdir(), 'dp-sandboxes'));
    this.credentialRoot = path.resolve(options.credentialRoot ?? (existsSync('/dev/shm') ? '/dev/shm/dp-credentials' : path.join(os.tmpdir(), 'dp-credentials')));
  }

  /** Decides at start whether this host can isolate, and says so when it cannot. */
  static async open(options: LocalProcessSandboxHostOptions = {}): Promise<LocalProcessSandboxHost> {
    const warn = options.warn ?? ((message: string) => console.warn(message));
    let capabilities: SandboxCapabilities;
    if (options.isolation === 'off') capabilities = { isolated: false, reason: 'isolation turned off by configuration' };
    else if (process.getuid?.() !== 0)
      capabilities = { isolated: false, reason: 'not running as root: cannot give sandbox processes their own uids and pid namespaces' };
    else if (!['unshare', 'nsenter', 'setpriv'].every((tool) => ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((d) => existsSync(path.join(d, tool)))))
      capabilities = { isolated: false, reason: 'util-linux unshare, nsenter and setpriv are not installed' };
    else capabilities = { isolated: true };
    const cgroups = capabilities.isolated ? await detectCgroupSupport() : undefined;
    const host = new LocalProcessSandboxHost(capabilities, options, cgroups?.available ? cgroups : undefined);
    // Sandbox uids must traverse the root (never list it): a caller-made mkdtemp dir would be 0700.
    await mkdir(path.join(host.root, 'sandboxes'), { recursive: true, mode: 0o711 });
    await mkdir(path.join(host.root, 'volumes'), { recursive: true, mode: 0o711 });
    for (const dir of [host.root, path.join(host.root, 'sandboxes'), path.join(host.root, 'volumes')]) await chmod(dir, 0o711);
    await mkdir(host.credentialRoot, { recursive: true, mode: 0o711 });
    await chmod(host.credentialRoot, 0o711);
    if (capabilities.isolated) {
      try {
        // Probe once: a root container without CAP_SYS_ADMIN cannot create namespaces.
        const probe = await host.create({ runId: 'probe', files: {}, redactor: { redact: (t) => t, stream: () => ({ push: (c) => c, end: () => '' }) }, guard: { secretNames: [], managedValues: [] } });
        await host.teardown(probe);
      } catch (error) {
        const reason = `cannot create namespaces here (${(error as Error).message.slice(0, 200)})`;
        warn(`LocalProcessSandboxHost: sandboxes are NOT isolated: ${reason}`);
        return new LocalProcessSandboxHost({ isolated: false, reason }, options);
      }
      if (cgroups && !cgroups.available) {
        warn(`LocalProcessSandboxHost: sandboxes are NOT isolated: ${cgroups.reason}`);
        return new LocalProcessSandboxHost({ isolated: false, reason: cgroups.reason }, options, undefined, true);
      }
    } else warn(`LocalProcessSandboxHost: sandboxes are NOT isolated: ${capabilities.reason}`);
    return host;
  }

  async create(request: SandboxRequest): Promise<SandboxHandle> {
    const sandboxId = randomUUID();
    const root = path.join(this.root, 'sandboxes', sandboxId);
    const credentialDir = path.join(this.credentialRoot, sandboxId);
    let workspace = path.join(root, 'workspace');
    if (request.keptVolume !== undefined) {
      if (!VOLUME_NAME.test(request.keptVolume)) throw new DomainError('SANDBOX.VOLUME_NAME', 'invalid kept volume name', 'invalid');
      workspace = path.join(this.root, 'volumes', request.keptVolume);
    }
    // Checked here too, not only at the door: a host may be driven by something other than `POST .../runs`.
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const templates = checkValues(templateFileEntries(request.files), request.guard);
    if (!templates.ok) throw new LaunchRefusedError(templates);
    const isolated = this.namespaces;
    const uids = isolated ? await claimUidBlock(path.join(this.credentialRoot, '.uid-blocks')) : undefined;
    const owner = uids ? { uid: uids.agentUid, gid: uids.groupGid } : undefined;
    const handle: SandboxHandle = { sandboxId, runId: request.runId, workspace, isolated: this.capabilities.isolated };
    // Isolated, the proxy is the only way out; tools that honour these variables find it. Loopback inside the
    // sandbox is its doors (GATEWAY_URL, declared test servers), reached directly.
    const proxyEnv: Record<string, string> = isolated
      ? { HTTPS_PROXY: EGRESS_PROXY_URL, HTTP_PROXY: EGRESS_PROXY_URL, https_proxy: EGRESS_PROXY_URL, http_proxy: EGRESS_PROXY_URL, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' }
      : {};
    const env = { ...inheritedEnv(), ...proxyEnv, ...(request.env ?? {}) };
    let ns: PidNamespace | undefined;
    let doors: Doors | undefined;
    let cgroup: SandboxCgroup | undefined;
    // The proxy reads the allowance through this holder, so `setEgress` reaches the doors opened below.
    const egress = { current: request.egress };
    try {
      await mkdir(root, { recursive: true, mode: 0o711 });
      // Who owns this sandbox: the sweep leaves it alone while this process lives.
      await writeFile(path.join(root, OWNER_FILE), String(process.pid), { mode: 0o600 });
      await mkdir(path.join(root, 'home'), { mode: 0o700 });
      await mkdir(workspace, { recursive: true, mode: 0o2770 });
      await mkdir(credentialDir, { mode: 0o711 });
      if (owner) {
        await chown(path.join(root, 'home'), owner.uid, owner.uid);
        await chownTree(workspace, owner);
      }
      await chmod(workspace, 0o2770);
      await writeTemplateFiles(workspace, request.files, owner);
      if (this.cgroups) cgroup = await SandboxCgroup.create(this.cgroups, sandboxId, this.options.limits ?? DEFAULT_SANDBOX_LIMITS);
      if (isolated) {
        const rootDir = path.join(root, 'rootfs');
        await mkdir(rootDir, { mode: 0o700 });
        const binds = sandboxBinds({ workspace, home: path.join(root, 'home'), credentialDir });
        ns = await startPidNamespace({ launcher: this.launcher, env, guard: request.guard, redactor: request.redactor, cwd: root, rootDir, binds });
        doors = await this.openDoors(ns, path.join(root, 'doors'), env, request, () => this.sandboxes.get(sandboxId)?.egress ?? egress.current);
      }
      this.sandboxes.set(sandboxId, {
        handle, root, credentialDir, keptVolume: request.keptVolume !== undefined, redactor: request.redactor, guard: request.guard,
        env, proxyEnv, ...(uids ? { uids } : {}), ...(ns ? { ns } : {}), ...(doors ? { doors } : {}), ...(cgroup ? { cgroup } : {}), egress: egress.current, running: new Set(), processCount: 0, tornDown: false,
      });
      return handle;
    } catch (error) {
      await doors?.close();
      await ns?.close();
      await cgroup?.remove();
      await this.removeDisk(root, credentialDir, request.keptVolume !== undefined);
      await uids?.release();
      throw error;
    }
  }

  /** Removes what crashed host processes left behind (never a sandbox of a live process); returns how many. */
  async removeOrphans(): Promise<number> {
    return removeOrphanedSandboxes({ root: this.root, credentialRoot: this.credentialRoot }, (id) => this.sandboxes.has(id));
  }

  async exec(handle: SandboxHandle, command: CommandSpec): Promise<CommandResult> {
    return (await this.start(handle, command)).exited;
  }

  async start(handle: SandboxHandle, command: CommandSpec): Promise<RunningCommand> {
    const sandbox = this.live(handle);
    if (command.handOver && command.cwd !== undefined)
      throw new DomainError('SANDBOX.HAND_OVER_WITH_CWD', 'a command runs either in cwd or in a private directory it hands over, not both', 'invalid');
    const into = command.handOver?.into;
    if (into !== undefined && into !== '.') insideRoot(handle.workspace, into);
    const n = ++sandbox.processCount;
    const identity = this.identityFor(sandbox, command);
    // Every process gets its own credential directory on the tmpfs, owned by its uid; a credential-bearing
    // process also lives there (HOME, TMPDIR), so git and npm keep their state away from the workspace.
    const processDir = path.join(sandbox.credentialDir, `p${n}`);
    const privateDir = into !== undefined ? path.join(processDir, 'work') : undefined;
    const cwd = privateDir ?? (command.cwd === undefined ? handle.workspace : insideRoot(handle.workspace, command.cwd));
    const home = command.identity === 'agent' ? path.join(sandbox.root, 'home') : processDir;
    // A credential process gets a fixed env and an absolute program from the trusted directories: the RunSpec's
    // standing env (PATH, LD_PRELOAD, NODE_OPTIONS, GIT_*) and the workspace's files never steer it.
    const credential = command.identity === 'credential';
    const argv = credential ? [resolveTrustedProgram(command.argv[0] ?? ''), ...command.argv.slice(1)] : command.argv;
    const standingEnv = { ...(credential ? { ...CREDENTIAL_PROCESS_ENV, ...sandbox.proxyEnv } : sandbox.env), ...(command.env ?? {}), HOME: home, TMPDIR: home };
    const target: DeliveryTarget = {
      credentialDir: processDir,
      ...(identity ? { uid: identity.uid, gid: identity.gid } : {}),
      ...(sandbox.doors ? { egressProxy: EGRESS_PROXY_URL } : {}),
    };
    const prepare = async (): Promise<readonly CredentialDelivery[]> => {
      await mkdir(processDir, { mode: 0o700 });
      if (identity) await chown(processDir, identity.uid, identity.gid);
      if (privateDir) await makePrivateDir(privateDir, identity);
      const deliveries = command.credentials ? await command.credentials(target) : [];
      if (deliveries.some((d) => d.paths.some((p) => !within(processDir, p)))) {
        await Promise.all(deliveries.map((d) => d.cleanup().catch(() => undefined)));
        throw new DeliveryOutsideCredentialDirError();
      }
      return deliveries;
    };
    const launched = await this.launcher
      .start({
        argv,
        prefix: sandbox.ns && identity ? [...(sandbox.cgroup?.joinPrefix() ?? []), ...enterPrefix(sandbox.ns, identity, cwd)] : plainPrefix(cwd),
        standingEnv,
        guard: sandbox.guard,
        deliveries: prepare,
        cwd,
        redactor: sandbox.redactor,
        ...(command.timeoutMs !== undefined ? { timeoutMs: command.timeoutMs } : {}),
        ...(command.maxOutputBytes !== undefined ? { maxOutputBytes: command.maxOutputBytes } : {}),
        ...(command.signal ? { signal: command.signal } : {}),
        ...(command.stdin ? { input: command.stdin } : {}),
        ...(command.onOutput ? { onStdout: (text: string) => command.onOutput?.('stdout', text), onStderr: (text: string) => command.onOutput?.('stderr', text) } : {}),
      })
      .catch(async (error: unknown) => {
        await rm(processDir, { recursive: true, force: true });
        throw error;
      });
    sandbox.running.add(launched);
    const exited = launched.exited.then(async (exit) => {
      sandbox.running.delete(launched);
      const result = sandbox.cgroup ? await sandbox.cgroup.explain(exit) : exit;
      try {
        const succeeded = result.exitCode === 0 && !result.timedOut && !result.cancelled;
        return privateDir && into !== undefined && succeeded ? await this.handOver(handle, sandbox, privateDir, into, n, result) : result;
      } finally {
        await rm(processDir, { recursive: true, force: true });
      }
    });
    return { pid: launched.pid, exited, stop: async () => (await launched.stop(), exited) };
  }

  async teardown(handle: SandboxHandle): Promise<void> {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    if (!sandbox || sandbox.tornDown) return;
    sandbox.tornDown = true;
    if (sandbox.ns) await sandbox.ns.close();
    await sandbox.doors?.close();
    await Promise.all([...sandbox.running].map((p) => p.stop()));
    // Whatever is still in the sandbox's cgroups (nothing, once the namespace is gone) is killed here.
    await sandbox.cgroup?.remove();
    if (sandbox.ns) {
      const left = await processesIn(sandbox.ns.nsId);
      if (left.length > 0) throw new Error(`sandbox ${handle.sandboxId}: ${left.length} processes survived teardown`);
    }
    await this.removeDisk(sandbox.root, sandbox.credentialDir, sandbox.keptVolume);
    await sandbox.uids?.release();
    this.sandboxes.delete(handle.sandboxId);
  }

  /**
   * Moves a finished process's private directory beside the process directories (root-owned, so nothing of
   * the sandbox can create or swap entries there), where the agent can reach it, and lets an agent process
   * move its entries into the workspace. The host itself never writes into, chowns or deletes a tree the
   * agent can write: that would let a planted symlink steer a privileged operation.
   */
  private async handOver(handle: SandboxHandle, sandbox: Sandbox, privateDir: string, into: string, n: number, result: CommandResult): Promise<CommandResult> {
    const staging = path.join(sandbox.credentialDir, `handover-${n}`);
    try {
      await rename(privateDir, staging);
      const moved = await this.exec(handle, { argv: ['sh', '-c', HAND_OVER_SCRIPT, 'hand-over', staging, into], identity: 'agent', timeoutMs: HAND_OVER_TIMEOUT_MS });
      if (moved.exitCode === 0) return result;
      return { ...result, exitCode: moved.exitCode ?? 1, stderr: `${result.stderr}${moved.stderr}` };
    } catch (error) {
      return { ...result, exitCode: 1, stderr: `${result.stderr}hand-over: ${(error as Error).name}\n` };
    } finally {
      // Empty once the agent moved everything; what is left (a refused entry) goes with the sandbox at teardown.
      await rmdir(staging).catch(() => undefined);
    }
  }

  inspect(handle: SandboxHandle): SandboxInspection {
    const sandbox = this.live(handle);
    return {
      root: sandbox.root,
      credentialDir: sandbox.credentialDir,
      ...(sandbox.ns ? { nsId: sandbox.ns.nsId } : {}),
      ...(sandbox.uids ? { groupGid: sandbox.uids.groupGid, agentUid: sandbox.uids.agentUid } : {}),
      ...(sandbox.cgroup ? { cgroupDirs: sandbox.cgroup.dirs } : {}),
      ...(sandbox.doors ? { egress: sandbox.doors.egress.counts() } : {}),
    };
  }

  setEgress(handle: SandboxHandle, allowance: EgressAllowance): void {
    this.live(handle).egress = allowance;
  }

  drainEgress(handle: SandboxHandle): EgressTally | undefined {
    return this.live(handle).doors?.egress.drain();
  }

  private openDoors(
    ns: PidNamespace,
    dir: string,
    env: Readonly<Record<string, string>>,
    request: SandboxRequest,
    allowance: () => EgressAllowance | undefined,
  ): Promise<Doors> {
    const testServers = this.options.egress?.testServers ?? (() => []);
    return openDoors({
      launcher: this.launcher,
      ns,
      dir,
      ...(this.options.gatewayUrl ? { gatewayUrl: this.options.gatewayUrl } : {}),
      testServers: testServers(),
      policy: {
        ...(this.options.egress?.ports ? { ports: this.options.egress.ports } : {}),
        ...(this.options.egress?.platformHosts ? { platformHosts: this.options.egress.platformHosts } : {}),
        // Not the gateway: its door passes the gateway's route only, the proxy would pass its whole port.
        exceptions: testServers,
        allowance,
        ...(this.options.egress?.resolve ? { resolve: this.options.egress.resolve } : {}),
      },
      env,
      guard: request.guard,
      redactor: request.redactor,
    });
  }

  private live(handle: SandboxHandle): Sandbox {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    if (!sandbox || sandbox.tornDown) throw new SandboxGoneError(handle.sandboxId);
    return sandbox;
  }

  private identityFor(sandbox: Sandbox, command: CommandSpec): Identity | undefined {
    if (!sandbox.uids) return undefined;
    const uid = command.identity === 'agent' ? sandbox.uids.agentUid : sandbox.uids.credentialUid();
    return { uid, gid: uid, groupGid: sandbox.uids.groupGid };
  }

  private async removeDisk(root: string, credentialDir: string, keepVolume: boolean): Promise<void> {
    // A kept volume lives outside the sandbox root, so removing the root never touches it.
    void keepVolume;
    await rm(credentialDir, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  }
}
