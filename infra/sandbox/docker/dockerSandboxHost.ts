import { createHash, randomInt, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import type { EgressAllowance, EgressTally } from '../../../domain/egress';
import { DomainError } from '../../../domain/errors';
import { checkRunSpecEnv, checkValues, templateFileEntries, type GuardPolicy } from '../../../domain/launchGuard';
import type {
  CommandResult,
  CommandSpec,
  OutputRedactor,
  RunningCommand,
  SandboxCapabilities,
  RecoverableSandboxHost,
  SandboxHandle,
  SandboxRequest,
  SharedSandbox,
} from '../../../domain/ports/sandboxHost';
import type { CredentialDelivery, DeliveryTarget } from '../credentialDelivery';
import { EGRESS_PROXY_URL, openDoorSockets, type DoorSockets } from '../egress/doors';
import type { Resolver } from '../egress/egressProxy';
import { guardedLauncher, type GuardedLauncher, type LaunchedProcess } from '../guardedLauncher';
import { LaunchRefusedError } from '../launchErrors';
import { DeliveryOutsideCredentialDirError, HAND_OVER_SCRIPT, SandboxGoneError } from '../localProcessSandboxHost';
import { insideRoot, writeTemplateFiles } from '../sandboxFiles';
import { CREDENTIAL_PROCESS_ENV, resolveTrustedProgram } from '../trustedPrograms';
import { containerSpec, DEFAULT_LIMITS, LABEL, type ContainerLimits } from './containerSpec';
import { dockerEngine, dockerSocketPath, engineAnswers } from './dockerEngine';
import { stopCredentialProcesses } from './unsupervisedProcesses';
import { AGENT_HOME, AGENT_UID, DOOR_UID, FIRST_CREDENTIAL_UID, LAST_CREDENTIAL_UID, RELAY_JS, RELAY_SHELL, SANDBOX_GID } from './imageFiles';
import { IMAGE_SCRIPTS_HASH, imageLabels, REQUIRED_IN_IMAGE, SANDBOX_IMAGE_REPOSITORY, SCRIPTS_LABEL } from './sandboxImage';
import { engineIsolation, type EngineIsolation } from './engineIsolation';
import { containerUid, hostGid, hostUid, NOT_REMAPPED, parseUsernsBase, probeUserNamespaceIds, type UserNamespaceIds } from './userNamespaceIds';
import { keptWorkspaceDir, mountWorkspaceTmpfs, openKeptVolume, removeKeptVolumes, removeWorkspaceDir } from './workspaceStorage';

/**
 * Sandboxes as containers on a Docker engine (DESIGN.md §1.7): one container per run, found again by its
 * labels. Every process goes through the guarded launcher, which starts a host-side relay (RELAY_JS); the
 * relay creates an exec whose command and env are fixed, and hands the real argv, env and stdin to the
 * launcher inside the image over the exec's stdin, so no value is ever part of what the engine stores.
 */

export const DEFAULT_SANDBOX_IMAGE = `${SANDBOX_IMAGE_REPOSITORY}:latest`;
const DEFAULT_SCOPE = 'default';
const CONTAINER_PATH = '/usr/local/bin:/usr/bin:/bin';
const DOORS_READY_TIMEOUT_MS = 15_000;
const HAND_OVER_TIMEOUT_MS = 300_000;
const SCOPE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
/** The host-side relay's own failure status (RELAY_JS `fail`): the exec could not be made or followed. */
const RELAY_FAILED = 126;
/** In the sandbox's host directory: one empty file per credential uid any instance has used in the container. */
const UID_CLAIMS = 'uids';
/** Where a share's process numbers start (a holder's are below; an adopter's start at generation × 100 000). */
const SHARED_PROCESS_BASE = 1_000_000_000;

export interface DockerSandboxHostOptions {
  readonly docker?: Dockerode;
  /** The engine's unix socket (default: DOCKER_HOST); the relays reach it there. */
  readonly socketPath?: string;
  /** SANDBOX_IMAGE, default disco-parrot-sandbox:latest (`npm run sandbox-image`). */
  readonly image?: string;
  /** The value of the `disco-parrot.scope` label: hosts (or test suites) with different scopes never see each other's containers. */
  readonly scope?: string;
  /** Door sockets and the relay script, root-only. Default <tmpdir>/dp-docker-sandboxes/<scope>. */
  readonly root?: string;
  /** Per-process credential directories, bind-mounted at the same path. Default /dev/shm/dp-docker-credentials/<scope>. */
  readonly credentialRoot?: string;
  /** Workspaces, bind-mounted at the same path. Default /dev/shm/dp-docker-workspaces/<scope>. */
  readonly workspaceRoot?: string;
  readonly limits?: Partial<ContainerLimits>;
  /** SANDBOX_USERNS_BASE (`<uid>` or `<uid>:<gid>`): on a remapping engine, the host ids of container root, checked against the engine's map. */
  readonly usernsBase?: string;
  readonly launcher?: GuardedLauncher;
  readonly gatewayUrl?: string;
  readonly egress?: {
    readonly ports?: readonly number[];
    readonly platformHosts?: readonly string[];
    readonly testServers?: () => readonly string[];
    readonly resolve?: Resolver;
  };
}

/** The engine is not there, or the image lacks something: one line, naming what is missing. */
export class DockerHostUnavailableError extends DomainError {
  constructor(detail: string) {
    super('SANDBOX.DOCKER_UNAVAILABLE', `Docker sandbox host: ${detail}`, 'unavailable');
    this.name = 'DockerHostUnavailableError';
  }
}

/** What running processes in a container takes: the holder's sandbox, or one shared beside it (`share`). */
interface ServedSandbox {
  readonly handle: SandboxHandle;
  readonly containerId: string;
  readonly hostDir: string;
  readonly credentialDir: string;
  readonly redactor: OutputRedactor;
  readonly guard: GuardPolicy;
  readonly env: Readonly<Record<string, string>>;
  readonly running: Set<LaunchedProcess>;
  processCount: number;
  nextCredentialUid: number;
}

/** A sandbox this instance holds: it serves the container's doors and decides its egress. */
interface Sandbox extends ServedSandbox {
  readonly doors: DoorSockets;
  egress: EgressAllowance | undefined;
  tornDown: boolean;
}

/** A sandbox served beside its holder, by as many operations of this instance as use it now. */
interface Shared {
  readonly sandbox: ServedSandbox;
  users: number;
}

/** What tests and the sweep may see of a sandbox container. */
export interface DockerSandboxInspection {
  readonly containerId: string;
  readonly credentialDir: string;
  readonly hostDir: string;
  readonly workspace: string;
}

const PROXY_ENV = {
  HTTPS_PROXY: EGRESS_PROXY_URL, HTTP_PROXY: EGRESS_PROXY_URL, https_proxy: EGRESS_PROXY_URL, http_proxy: EGRESS_PROXY_URL,
  NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost',
};

function within(parent: string, child: string): boolean {
  const resolved = path.resolve(child);
  return resolved === parent || resolved.startsWith(parent + path.sep);
}

async function waitForFile(file: string, timeoutMs: number, alive: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < until; i++) {
    if (existsSync(file)) return;
    if (i % 20 === 19 && !(await alive())) throw new DockerHostUnavailableError('the sandbox container exited before its doors were ready');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new DockerHostUnavailableError(`the sandbox container's doors were not ready within ${timeoutMs} ms`);
}

/**
 * Where a scope's door sockets and credential directories live by default. Short: a unix socket's path must stay
 * under 108 bytes (<root>/<16 hex>/doors/g1/gateway.sock), so the scope is hashed.
 */
export function defaultScopeDirs(scope: string): { readonly root: string; readonly credentialRoot: string; readonly workspaceRoot: string } {
  const scopeDir = createHash('sha256').update(scope).digest('hex').slice(0, 8);
  const shm = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return {
    root: path.join(os.tmpdir(), 'dp-docker', scopeDir),
    credentialRoot: path.join(shm, 'dp-docker-credentials', scopeDir),
    workspaceRoot: path.join(shm, 'dp-docker-workspaces', scopeDir),
  };
}

export class DockerSandboxHost implements RecoverableSandboxHost {
  readonly capabilities: SandboxCapabilities = { isolated: true, keepsWorkspaceVolumes: true };
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly shared = new Map<string, Shared>();
  private readonly launcher: GuardedLauncher;
  private readonly limits: ContainerLimits;

  private constructor(
    private readonly docker: Dockerode,
    private readonly socketPath: string,
    readonly image: string,
    readonly scope: string,
    private readonly root: string,
    private readonly credentialRoot: string,
    private readonly workspaceRoot: string,
    private readonly relayScript: string,
    private readonly options: DockerSandboxHostOptions,
    /** What the engine adds to the container's isolation (user-namespace remapping, rootless), for the start line and the docs. */
    readonly isolation: EngineIsolation,
    /** Container ids as host ids: identity unless the engine remaps user namespaces (userNamespaceIds.ts). */
    readonly ids: UserNamespaceIds,
  ) {
    this.launcher = options.launcher ?? guardedLauncher;
    this.limits = { ...DEFAULT_LIMITS, ...(options.limits ?? {}) };
  }

  /** Checks the engine and the image at start; refuses with one line naming what is missing. */
  static async open(options: DockerSandboxHostOptions = {}): Promise<DockerSandboxHost> {
    const scope = options.scope ?? DEFAULT_SCOPE;
    if (!SCOPE.test(scope)) throw new DomainError('SANDBOX.DOCKER_SCOPE', 'invalid Docker sandbox scope', 'invalid');
    const socketPath = options.socketPath ?? dockerSocketPath();
    const docker = options.docker ?? dockerEngine(socketPath);
    const image = options.image ?? DEFAULT_SANDBOX_IMAGE;
    // The container's uids own their workspace and credential directories on this side: chown needs root.
    if (process.getuid?.() !== 0) throw new DockerHostUnavailableError('the backend must run as root to give the sandbox uids their directories');
    if (!(await engineAnswers(docker))) throw new DockerHostUnavailableError(`no engine answers at unix://${socketPath} (set DOCKER_HOST)`);
    const isolation = await engineIsolation(docker);
    const labels = await imageLabels(docker, image);
    if (labels === undefined)
      throw new DockerHostUnavailableError(`image ${image} is missing (run \`npm run sandbox-image\`, or set SANDBOX_IMAGE to an image the engine has)`);
    const scripts = labels[SCRIPTS_LABEL];
    if (scripts !== undefined && scripts !== IMAGE_SCRIPTS_HASH)
      throw new DockerHostUnavailableError(`image ${image} has launcher scripts of another version (${scripts}, this host needs ${IMAGE_SCRIPTS_HASH}): run \`npm run sandbox-image\``);
    const missing = await DockerSandboxHost.missingInImage(docker, image);
    if (missing.length > 0) throw new DockerHostUnavailableError(`image ${image} lacks ${missing.join(', ')}`);
    // Remapped, the container's uids are other host uids: the sandbox's directories on this side go to those.
    const ids = isolation.userNamespaceRemap ? await DockerSandboxHost.remappedIds(docker, image, options) : NOT_REMAPPED;
    const defaults = defaultScopeDirs(scope);
    const root = path.resolve(options.root ?? defaults.root);
    if (root.length > 60) throw new DomainError('SANDBOX.DOCKER_ROOT', `the Docker sandbox root ${root} is too long for the door sockets' paths`, 'invalid');
    const credentialRoot = path.resolve(options.credentialRoot ?? defaults.credentialRoot);
    const workspaceRoot = path.resolve(options.workspaceRoot ?? defaults.workspaceRoot);
    await mkdir(workspaceRoot, { recursive: true, mode: 0o711 });
    await chmod(workspaceRoot, 0o711);
    await mkdir(root, { recursive: true, mode: 0o711 });
    await chmod(root, 0o711);
    await mkdir(credentialRoot, { recursive: true, mode: 0o711 });
    await chmod(credentialRoot, 0o711);
    const relayScript = path.join(root, 'relay.js');
    await writeFile(relayScript, RELAY_JS, { mode: 0o600 });
    return new DockerSandboxHost(docker, socketPath, image, scope, root, credentialRoot, workspaceRoot, relayScript, options, isolation, ids);
  }

  private static async remappedIds(docker: Dockerode, image: string, options: DockerSandboxHostOptions): Promise<UserNamespaceIds> {
    try {
      const expected = parseUsernsBase(options.usernsBase);
      return await probeUserNamespaceIds(docker, image, [0, SANDBOX_GID, AGENT_UID, DOOR_UID, LAST_CREDENTIAL_UID], expected);
    } catch (error) {
      throw new DockerHostUnavailableError(`user-namespace remapping: ${(error as Error).message} (docs/sandbox-hosts.md)`);
    }
  }

  private hostUid(uid: number): number {
    return hostUid(this.ids, uid);
  }

  private hostGid(gid: number): number {
    return hostGid(this.ids, gid);
  }

  /** Runs the image once (no network, nothing mounted) and lists the required files it lacks. */
  private static async missingInImage(docker: Dockerode, image: string): Promise<string[]> {
    const container = await docker.createContainer({
      Image: image, Cmd: ['/bin/sh', '-c', 'for f; do [ -e "$f" ] || echo "$f"; done', 'check', ...REQUIRED_IN_IMAGE], User: '65534:65534',
      HostConfig: { NetworkMode: 'none', CapDrop: ['ALL'], ReadonlyRootfs: true, LogConfig: { Type: 'json-file', Config: {} } },
    });
    try {
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      const logs = (await container.logs({ stdout: true, stderr: true })).toString('latin1');
      const lines = logs.split('\n').map((l) => l.replace(/^[\s\S]{8}/, '').trim()).filter((l) => l.startsWith('/'));
      return StatusCode === 0 ? lines : [`a working /bin/sh (exit ${StatusCode})`];
    } catch (error) {
      return [`a runnable /bin/sh (${(error as Error).message.slice(0, 120)})`];
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
  }

  async create(request: SandboxRequest): Promise<SandboxHandle> {
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const templates = checkValues(templateFileEntries(request.files), request.guard);
    if (!templates.ok) throw new LaunchRefusedError(templates);
    const kept = request.keptVolume !== undefined ? await openKeptVolume(this.docker, this.scope, { ...request, keptVolume: request.keptVolume }, this.ids) : undefined;
    const sandboxId = randomUUID();
    const hostDir = this.hostDirOf(sandboxId);
    const credentialDir = path.join(this.credentialRoot, sandboxId);
    const workspace = kept?.dir ?? this.workspaceOf(sandboxId);
    const handle: SandboxHandle = { sandboxId, runId: request.runId, workspace, isolated: true };
    const env = { PATH: CONTAINER_PATH, LANG: 'C.UTF-8', ...PROXY_ENV, ...(request.env ?? {}) };
    const egress = { current: request.egress };
    let doors: DoorSockets | undefined;
    let containerId: string | undefined;
    try {
      await mkdir(hostDir, { mode: 0o711 });
      await mkdir(credentialDir, { mode: 0o711 });
      // A tmpfs of its own (or the kept volume), at the same path inside: the host's checks (templates, the
      // gateway's repository check, hand-over) see what the sandbox sees, exactly as for the local host.
      if (!kept) await mountWorkspaceTmpfs(workspace, this.limits.workspaceBytes, this.ids);
      await writeTemplateFiles(workspace, request.files, { uid: this.hostUid(AGENT_UID), gid: this.hostGid(SANDBOX_GID) });
      doors = await this.openDoors(hostDir, () => this.sandboxes.get(sandboxId)?.egress ?? egress.current);
      const container = await this.docker.createContainer(
        containerSpec({
          image: this.image, scope: this.scope, sandboxId, runId: request.runId, ...(request.workspaceId !== undefined ? { workspaceId: request.workspaceId } : {}),
          doorsDir: path.join(hostDir, 'doors'), credentialDir, workspace, ...(kept ? { keptVolume: kept.volume } : {}), limits: this.limits,
        }),
      );
      containerId = container.id;
      await container.start();
      await waitForFile(path.join(hostDir, 'doors', 'ready'), DOORS_READY_TIMEOUT_MS, async () => (await container.inspect()).State.Running);
      const sandbox: Sandbox = {
        handle, containerId, hostDir, credentialDir, redactor: request.redactor, guard: request.guard, env, doors,
        egress: egress.current, running: new Set(), processCount: 0, nextCredentialUid: FIRST_CREDENTIAL_UID, tornDown: false,
      };
      this.sandboxes.set(sandboxId, sandbox);
      return handle;
    } catch (error) {
      this.sandboxes.delete(sandboxId);
      await doors?.close();
      if (containerId) await this.docker.getContainer(containerId).remove({ force: true, v: true }).catch(() => undefined);
      await this.removeDirs(sandboxId);
      throw error;
    }
  }

  /** The run's sandbox container, found by its label (any host instance of this scope may have made it). */
  async find(runId: string): Promise<SandboxHandle | undefined> {
    const [found] = await this.listContainers({ [LABEL.run]: runId });
    const sandboxId = found?.Labels?.[LABEL.sandbox];
    if (!found || !sandboxId) return undefined;
    return this.sandboxes.get(sandboxId)?.handle ?? { sandboxId, runId, workspace: keptWorkspaceDir(found) ?? this.workspaceOf(sandboxId), isolated: true };
  }

  /**
   * Serves a sandbox another (dead or stopped) instance of this scope created, found by `find`: new door
   * sockets behind the running forwarder, and process numbers and credential uids past any the container or its
   * credential directory has seen, so none is reused. The credential processes that instance started (MCP servers,
   * an operation cut short) are stopped: nobody supervises their leases any more. The run's redactor and guard come
   * from the caller, as at `create`. The gateway's port must be the one the container was created with.
   */
  async adopt(handle: SandboxHandle, request: Pick<SandboxRequest, 'redactor' | 'guard' | 'env' | 'egress'>): Promise<SandboxHandle> {
    const known = this.sandboxes.get(handle.sandboxId);
    if (known && !known.tornDown) return known.handle;
    const [container] = await this.listContainers({ [LABEL.sandbox]: handle.sandboxId });
    if (!container || container.State !== 'running') throw new SandboxGoneError(handle.sandboxId);
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const hostDir = this.hostDirOf(handle.sandboxId);
    const credentialDir = path.join(this.credentialRoot, handle.sandboxId);
    // Past every generation the doors directory or its map has named (a closed instance removed its own sockets).
    const doorsJson = await readFile(path.join(hostDir, 'doors', 'doors.json'), 'utf8').catch(() => '');
    const named = [...(await readdir(path.join(hostDir, 'doors')).catch(() => [] as string[])), ...doorsJson.split('"')];
    const generation = Math.max(1, ...named.map((d) => Number(/^g(\d+)/.exec(d)?.[1] ?? 0))) + 1;
    const doors = await this.openDoors(hostDir, () => this.sandboxes.get(handle.sandboxId)?.egress ?? request.egress, generation);
    const sandbox: Sandbox = {
      handle, containerId: container.Id, hostDir, credentialDir, redactor: request.redactor, guard: request.guard,
      env: { PATH: CONTAINER_PATH, LANG: 'C.UTF-8', ...PROXY_ENV, ...(request.env ?? {}) }, doors, egress: request.egress,
      running: new Set(), processCount: generation * 100_000, nextCredentialUid: LAST_CREDENTIAL_UID + 1, tornDown: false,
    };
    this.sandboxes.set(handle.sandboxId, sandbox);
    try {
      const seen = await this.credentialUidsIn(sandbox);
      sandbox.nextCredentialUid = seen.highest + 1;
      await stopCredentialProcesses(this.docker, container.Id, () => this.credentialUidsIn(sandbox).then((s) => s.running));
    } catch (error) {
      this.sandboxes.delete(handle.sandboxId);
      await doors.close();
      throw error;
    }
    return handle;
  }

  /**
   * Serves a sandbox beside the instance that holds it (the gateway on this instance while the holder runs the
   * run's turn): none of the holder's doors, egress decisions or processes is touched. Process numbers come from a
   * band of this share's own, and credential uids are claimed as the holder claims its own (`claimCredentialUid`),
   * so neither ever runs a process as a uid the other used. Operations of this instance share one entry until the
   * last leaves.
   */
  async share(handle: SandboxHandle, request: Pick<SandboxRequest, 'redactor' | 'guard' | 'env'>): Promise<SharedSandbox> {
    const own = this.sandboxes.get(handle.sandboxId);
    if (own && !own.tornDown) return { handle: own.handle, leave: async () => undefined };
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const [container] = await this.listContainers({ [LABEL.sandbox]: handle.sandboxId });
    if (!container || container.State !== 'running') throw new SandboxGoneError(handle.sandboxId);
    const hostDir = this.hostDirOf(handle.sandboxId);
    const highestClaimed = await this.highestClaimedUid(hostDir);
    const entry: Shared = this.shared.get(handle.sandboxId) ?? {
      sandbox: {
        handle, containerId: container.Id, hostDir, credentialDir: path.join(this.credentialRoot, handle.sandboxId), redactor: request.redactor, guard: request.guard,
        env: { PATH: CONTAINER_PATH, LANG: 'C.UTF-8', ...PROXY_ENV, ...(request.env ?? {}) }, running: new Set(),
        processCount: SHARED_PROCESS_BASE + randomInt(0, 1_000_000) * 1_000, nextCredentialUid: highestClaimed + 1,
      },
      users: 0,
    };
    this.shared.set(handle.sandboxId, entry);
    entry.users++;
    let left = false;
    const leave = async (): Promise<void> => {
      if (left) return;
      left = true;
      entry.users--;
      if (entry.users === 0 && this.shared.get(handle.sandboxId) === entry) this.shared.delete(handle.sandboxId);
    };
    return { handle: entry.sandbox.handle, leave };
  }

  /** Stops serving this instance's sandboxes and forgets them, leaving their containers running for another instance. */
  async close(): Promise<void> {
    for (const sandbox of this.sandboxes.values()) await sandbox.doors.close();
    this.sandboxes.clear();
    this.shared.clear();
  }

  /** Removes a sandbox a dead instance left (its container, found by label, and its directories). */
  async removeLeftover(sandboxId: string): Promise<void> {
    await this.teardown({ sandboxId, runId: '', workspace: this.workspaceOf(sandboxId), isolated: true });
  }

  /** Purge: removes the workspace's kept volumes under this scope; returns how many. */
  async removeWorkspaceVolumes(workspaceId: string): Promise<number> {
    return removeKeptVolumes(this.docker, this.scope, workspaceId);
  }

  /** Every sandbox container of this scope, by run id. */
  async list(): Promise<ReadonlyArray<{ readonly runId: string; readonly sandboxId: string; readonly containerId: string; readonly workspaceId?: string }>> {
    return (await this.listContainers({})).flatMap((c) => {
      const runId = c.Labels?.[LABEL.run];
      const sandboxId = c.Labels?.[LABEL.sandbox];
      const workspaceId = c.Labels?.[LABEL.workspace];
      return runId && sandboxId ? [{ runId, sandboxId, containerId: c.Id, ...(workspaceId ? { workspaceId } : {}) }] : [];
    });
  }

  /**
   * Removes the containers (and their host directories) of runs that are over, found by label; a sandbox
   * of this instance is left to its own teardown. Returns how many were removed.
   */
  async removeOrphans(runIsOver: (runId: string) => Promise<boolean>): Promise<number> {
    let removed = 0;
    for (const sandbox of await this.list()) {
      if (this.sandboxes.has(sandbox.sandboxId) || this.shared.has(sandbox.sandboxId) || !(await runIsOver(sandbox.runId))) continue;
      await this.removeContainer(sandbox.containerId);
      await this.removeDirs(sandbox.sandboxId);
      removed++;
    }
    return removed;
  }

  /**
   * Runs a process to its end. When its relay could not reach the engine or the container (the engine stopped or
   * restarted), the step fails saying so rather than with the relay's exit status.
   */
  async exec(handle: SandboxHandle, command: CommandSpec): Promise<CommandResult> {
    const result = await (await this.start(handle, command)).exited;
    if (result.exitCode === RELAY_FAILED && result.stderr.includes('dp-relay: ')) {
      const why = await this.engineTrouble(handle);
      if (why) throw new DockerHostUnavailableError(why);
    }
    return result;
  }

  /** What keeps processes from running, when it is the engine or the container; undefined when both are fine. */
  private async engineTrouble(handle: SandboxHandle): Promise<string | undefined> {
    if (!(await engineAnswers(this.docker))) return `no engine answers at unix://${this.socketPath} (it stopped or is restarting)`;
    const containerId = this.served(handle.sandboxId)?.containerId;
    if (!containerId) return undefined;
    const running = await this.docker.getContainer(containerId).inspect().then((info) => info.State.Running, () => false);
    return running ? undefined : 'the sandbox container is no longer running (its engine stopped or restarted)';
  }

  async start(handle: SandboxHandle, command: CommandSpec): Promise<RunningCommand> {
    const sandbox = this.served(handle.sandboxId);
    if (!sandbox) throw new SandboxGoneError(handle.sandboxId);
    if (command.handOver && command.cwd !== undefined)
      throw new DomainError('SANDBOX.HAND_OVER_WITH_CWD', 'a command runs either in cwd or in a private directory it hands over, not both', 'invalid');
    const into = command.handOver?.into;
    if (into !== undefined && into !== '.') insideRoot(handle.workspace, into);
    const n = ++sandbox.processCount;
    const credential = command.identity === 'credential';
    const uid = credential ? await this.claimCredentialUid(sandbox) : AGENT_UID;
    // The credential directory is the same path on the host and in the container: the channels write it here.
    const processDir = path.join(sandbox.credentialDir, `p${n}`);
    const privateDir = into !== undefined ? path.join(processDir, 'work') : undefined;
    const cwd = privateDir ?? (command.cwd === undefined ? handle.workspace : insideRoot(handle.workspace, command.cwd));
    const home = credential ? processDir : AGENT_HOME;
    const argv = credential ? [resolveTrustedProgram(command.argv[0] ?? ''), ...command.argv.slice(1)] : command.argv;
    const standingEnv = { ...(credential ? { ...CREDENTIAL_PROCESS_ENV, ...PROXY_ENV } : sandbox.env), ...(command.env ?? {}), HOME: home, TMPDIR: credential ? home : '/tmp' };
    // Deliveries are written on this side: owned by the process's uid as the host sees it.
    const target: DeliveryTarget = { credentialDir: processDir, uid: this.hostUid(uid), gid: this.hostGid(uid), egressProxy: EGRESS_PROXY_URL };
    const prepare = async (): Promise<readonly CredentialDelivery[]> => {
      await mkdir(processDir, { mode: 0o700 });
      await chown(processDir, this.hostUid(uid), this.hostGid(uid));
      if (privateDir) {
        await mkdir(privateDir, { mode: 0o700 });
        await chown(privateDir, this.hostUid(uid), this.hostGid(SANDBOX_GID));
        await chmod(privateDir, 0o2770);
      }
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
        prefix: this.relayPrefix(sandbox, `${uid}:${SANDBOX_GID}`, cwd),
        standingEnv,
        guard: sandbox.guard,
        deliveries: prepare,
        cwd: sandbox.hostDir,
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
    const exited = launched.exited.then(async (result) => {
      sandbox.running.delete(launched);
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
    if (sandbox?.tornDown) return;
    if (sandbox) sandbox.tornDown = true;
    try {
      // Removing the container kills every process in it; the relays on this side then see their exec end.
      if (sandbox) await this.removeContainer(sandbox.containerId);
      // A sandbox another instance made (found by its run id): its container is known by label only.
      else for (const c of await this.listContainers({ [LABEL.sandbox]: handle.sandboxId })) await this.removeContainer(c.Id);
    } catch (error) {
      // No engine (stopped, restarting): the rest of the teardown goes on, and the container, labelled with its run,
      // is the sweep's once the engine answers again (removeOrphans: its run is over by then).
      if (await engineAnswers(this.docker)) throw error;
    }
    if (sandbox) {
      await Promise.all([...sandbox.running].map((p) => p.stop()));
      await sandbox.doors.close();
    }
    await this.removeDirs(handle.sandboxId);
    this.sandboxes.delete(handle.sandboxId);
  }

  setEgress(handle: SandboxHandle, allowance: EgressAllowance): void {
    this.live(handle).egress = allowance;
  }

  drainEgress(handle: SandboxHandle): EgressTally | undefined {
    return this.live(handle).doors.egress.drain();
  }

  inspect(handle: SandboxHandle): DockerSandboxInspection {
    const sandbox = this.live(handle);
    return { containerId: sandbox.containerId, credentialDir: sandbox.credentialDir, hostDir: sandbox.hostDir, workspace: sandbox.handle.workspace };
  }

  private async listContainers(labels: Record<string, string>): Promise<Dockerode.ContainerInfo[]> {
    const label = Object.entries({ [LABEL.scope]: this.scope, ...labels }).map(([k, v]) => `${k}=${v}`);
    return this.docker.listContainers({ all: true, filters: { label } });
  }

  private async removeContainer(containerId: string): Promise<void> {
    try {
      await this.docker.getContainer(containerId).remove({ force: true, v: true });
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      // 404: already gone; 409: removal already in progress (another teardown or the sweep).
      if (status !== 404 && status !== 409) throw error;
    }
  }

  /**
   * The host's sockets behind the container's doors, in a directory the container mounts: `doors.json` maps each
   * port to its socket, relative to the directory, so only the forwarder's uid (never the agent) can reach them.
   */
  private async openDoors(hostDir: string, allowance: () => EgressAllowance | undefined, generation = 1): Promise<DoorSockets> {
    const doorsDir = path.join(hostDir, 'doors');
    if (generation === 1) {
      await mkdir(doorsDir, { mode: 0o700 });
      await chown(doorsDir, this.hostUid(DOOR_UID), this.hostGid(DOOR_UID));
    }
    const dir = path.join(doorsDir, `g${generation}`);
    const testServers = this.options.egress?.testServers ?? (() => []);
    const doors = await openDoorSockets({
      dir,
      ...(this.options.gatewayUrl ? { gatewayUrl: this.options.gatewayUrl } : {}),
      testServers: testServers(),
      policy: {
        ...(this.options.egress?.ports ? { ports: this.options.egress.ports } : {}),
        ...(this.options.egress?.platformHosts ? { platformHosts: this.options.egress.platformHosts } : {}),
        exceptions: testServers,
        allowance,
        ...(this.options.egress?.resolve ? { resolve: this.options.egress.resolve } : {}),
      },
    });
    await chown(dir, this.hostUid(DOOR_UID), this.hostGid(DOOR_UID));
    for (const door of doors.sockets) await chown(door.socketPath, this.hostUid(DOOR_UID), this.hostGid(DOOR_UID));
    const map = doors.sockets.map((door) => ({ port: door.port, socket: path.relative(doorsDir, door.socketPath) }));
    // Replaced whole (the forwarder reads it at every connection): a new generation takes over at once.
    await writeFile(path.join(doorsDir, 'doors.json.new'), JSON.stringify(map), { mode: 0o644 });
    await rename(path.join(doorsDir, 'doors.json.new'), path.join(doorsDir, 'doors.json'));
    return doors;
  }

  private relayPrefix(sandbox: ServedSandbox, user: string, cwd: string): string[] {
    return ['/bin/sh', '-c', RELAY_SHELL, 'dp-relay', process.execPath, this.relayScript, this.socketPath, sandbox.containerId, user, cwd, '--'];
  }

  /**
   * The credential uids the container's live processes run as, and the highest one a process or a credential
   * directory has had. Read by an agent process: a container's /proc lists every process (no hidepid), and a
   * status file is world-readable.
   */
  private async credentialUidsIn(sandbox: ServedSandbox): Promise<{ readonly highest: number; readonly running: ReadonlySet<number> }> {
    const credential = (uid: number): boolean => uid >= FIRST_CREDENTIAL_UID && uid <= LAST_CREDENTIAL_UID;
    const uids = [FIRST_CREDENTIAL_UID - 1];
    // Owners on this side are host uids; the container's /proc below shows container uids.
    for (const entry of await readdir(sandbox.credentialDir).catch(() => [] as string[])) uids.push(containerUid(this.ids, (await stat(path.join(sandbox.credentialDir, entry))).uid) ?? -1);
    const seen = await this.exec(sandbox.handle, { argv: ['sh', '-c', 'cat /proc/[0-9]*/status 2>/dev/null'], identity: 'agent', timeoutMs: 30_000 });
    const running = new Set<number>();
    for (const status of seen.stdout.split(/^(?=Name:)/m)) {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
      uids.push(uid);
      // A zombie is gone already; init reaps it.
      if (credential(uid) && !/^State:\s+Z/m.test(status)) running.add(uid);
    }
    return { highest: Math.max(...uids.filter((uid) => uid === FIRST_CREDENTIAL_UID - 1 || credential(uid))), running };
  }

  /** The sandbox's host directories: doors, credentials and the workspace (rm never follows a link the agent planted). */
  private async removeDirs(sandboxId: string): Promise<void> {
    await rm(path.join(this.credentialRoot, sandboxId), { recursive: true, force: true });
    await removeWorkspaceDir(this.workspaceOf(sandboxId));
    await rm(this.hostDirOf(sandboxId), { recursive: true, force: true });
  }

  private workspaceOf(sandboxId: string): string {
    return path.join(this.workspaceRoot, sandboxId);
  }

  private hostDirOf(sandboxId: string): string {
    return path.join(this.root, sandboxId.replaceAll('-', '').slice(0, 16));
  }

  private credentialUid(sandbox: ServedSandbox): number {
    if (sandbox.nextCredentialUid > LAST_CREDENTIAL_UID) throw new DomainError('SANDBOX.UIDS_EXHAUSTED', 'this sandbox has used every credential uid', 'conflict');
    return sandbox.nextCredentialUid++;
  }

  /**
   * The next credential uid no process of the container has had, on whichever instance: claimed by creating its
   * file in the sandbox's host directory (exclusively; the container never sees that directory), as every instance
   * serving the sandbox does, its holder and any that share it.
   */
  private async claimCredentialUid(sandbox: ServedSandbox): Promise<number> {
    const claims = path.join(sandbox.hostDir, UID_CLAIMS);
    for (;;) {
      const uid = this.credentialUid(sandbox);
      try {
        await writeFile(path.join(claims, String(uid)), '', { flag: 'wx', mode: 0o600 });
        return uid;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') continue;
        if (code !== 'ENOENT') throw error;
        // The first claim: the directory is made now (a missing host directory means the sandbox is gone).
        await mkdir(claims, { mode: 0o700 }).catch((made: NodeJS.ErrnoException) => {
          if (made.code !== 'EEXIST') throw new SandboxGoneError(sandbox.handle.sandboxId);
        });
        sandbox.nextCredentialUid = uid;
      }
    }
  }

  private async highestClaimedUid(hostDir: string): Promise<number> {
    const claimed = (await readdir(path.join(hostDir, UID_CLAIMS)).catch(() => [] as string[])).map(Number).filter(Number.isInteger);
    return Math.max(FIRST_CREDENTIAL_UID - 1, ...claimed);
  }

  private async handOver(handle: SandboxHandle, sandbox: ServedSandbox, privateDir: string, into: string, n: number, result: CommandResult): Promise<CommandResult> {
    const staging = path.join(sandbox.credentialDir, `handover-${n}`);
    try {
      await rename(privateDir, staging);
      const moved = await this.exec(handle, { argv: ['sh', '-c', HAND_OVER_SCRIPT, 'hand-over', staging, into], identity: 'agent', timeoutMs: HAND_OVER_TIMEOUT_MS });
      if (moved.exitCode === 0) return result;
      return { ...result, exitCode: moved.exitCode ?? 1, stderr: `${result.stderr}${moved.stderr}` };
    } catch (error) {
      return { ...result, exitCode: 1, stderr: `${result.stderr}hand-over: ${(error as Error).name}\n` };
    } finally {
      await rmdir(staging).catch(() => undefined);
    }
  }

  private live(handle: SandboxHandle): Sandbox {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    if (!sandbox || sandbox.tornDown) throw new SandboxGoneError(handle.sandboxId);
    return sandbox;
  }

  /** The sandbox this instance holds, or else one it shares now. */
  private served(sandboxId: string): ServedSandbox | undefined {
    const own = this.sandboxes.get(sandboxId);
    if (own) return own.tornDown ? undefined : own;
    return this.shared.get(sandboxId)?.sandbox;
  }
}
