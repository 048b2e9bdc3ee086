import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HOST_ERROR, SANDBOX_ERROR } from '../../../domain/catalogue';
import type { EgressAllowance, EgressTally } from '../../../domain/egress';
import { DomainError } from '../../../domain/errors';
import { argvEntries, checkRunSpecEnv, checkStandingEnv, checkValues, templateFileEntries, type GuardPolicy } from '../../../domain/launchGuard';
import type {
  CommandResult, CommandSpec, ExpectedSandbox, LeftoverRun, OutputRedactor, ProcessCredentialDelivery, RecoverableSandboxHost, RunningCommand, SandboxCapabilities, SandboxHandle, SandboxRequest, SharedSandbox,
} from '../../../domain/ports/sandboxHost';
import { PLATFORM_PARTITION } from '../../../domain/streams';
import { InputConflictError, LaunchRefusedError } from '../launchErrors';
import type { SshTarget, SshTargets } from '../../../domain/ports/sshTargets';
import type { ChannelConnection, HostDirectory, SshTunnel, SshTunnelListener } from './hostChannelServer';
import type { DeliveryTarget } from '../credentialDelivery';
import { sendInput } from './remoteStdin';
import { type AgentBody, CREDENTIAL_DIR_PLACEHOLDER, EGRESS_PROXY_PLACEHOLDER, type WireCommand, type WireDelivery } from './protocol';

interface RemoteSandbox {
  readonly connection: ChannelConnection;
  readonly redactor: OutputRedactor;
  readonly guard: GuardPolicy;
  readonly runId: string;
  /** The agent's ephemeral SSH host key for this sandbox, when it serves IDE SSH. */
  readonly sshHostKey?: string;
  /** Egress decisions the agent reported with process ends, not yet drained. */
  egress: EgressTally | undefined;
}

/** Where `find` saw a run's sandbox, until this instance adopts or shares it. */
interface LocatedSandbox {
  readonly connection: ChannelConnection;
  readonly runId: string;
  readonly sshHostKey?: string;
}

const byLoad = (a: ChannelConnection, b: ChannelConnection): number => a.sandboxes - b.sandboxes;

function poolName(request: SandboxRequest): string {
  const pool = request.placement?.pool;
  return pool === 'managed' ? 'the managed pool' : pool === 'workspace' ? "the workspace's own hosts" : "the workspace's own hosts or the managed pool";
}

/**
 * A `SandboxHost` whose sandboxes live on an enrolled host agent, reached over the host channel. The platform
 * keeps the decisions: the launch guard runs here (the agent never sees the workspace's values), deliveries are
 * prepared here and travel only inside their process's exec, and output is redacted here before it is kept.
 * A sandbox outlives the app instance that made it (it lives on the agent): any instance finds it by its run id
 * on a live host of the run's workspace's pool, and takes it over or serves it beside its holder.
 */
export class RemoteSandboxHost implements RecoverableSandboxHost, SshTargets {
  private readonly sandboxes = new Map<string, RemoteSandbox>();
  private readonly located = new Map<string, LocatedSandbox>();

  /**
   * `platformHosts`: the platform's own host names (storage, vaults, Service Bus, the app), sent with every egress
   * allowance so the agent's proxy refuses them whatever a workspace's list says, as the local and Docker hosts do.
   */
  constructor(private readonly channel: HostDirectory, private readonly platformHosts: readonly string[] = []) {}

  /** Isolated when every live host says its sandboxes are (each handle still says so for its own sandbox). */
  get capabilities(): SandboxCapabilities {
    const live = this.channel.allLiveHosts();
    if (live.length === 0) return { isolated: false, reason: 'no live sandbox host has reported its isolation yet' };
    const degraded = live.find((c) => !c.capabilities?.isolated);
    return degraded ? { isolated: false, reason: `host ${degraded.hostId}: ${degraded.capabilities?.reason ?? 'not isolated'}` } : { isolated: true };
  }

  async create(request: SandboxRequest): Promise<SandboxHandle> {
    await this.channel.refresh?.();
    const candidates = this.place(request);
    // The same checks as every host's create: reserved names and managed values in the standing env, then in the files.
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const templates = checkValues(templateFileEntries(request.files), request.guard);
    if (!templates.ok) throw new LaunchRefusedError(templates);
    const sandboxId = randomUUID();
    const create = {
      op: 'create', requestId: '', runId: request.runId, sandboxId, files: { ...request.files },
      ...(request.env ? { env: { ...request.env } } : {}), ...(request.keptVolume ? { keptVolume: request.keptVolume } : {}),
      ...(request.egress ? { egress: egressFrame(request.egress, this.platformHosts) } : {}),
    } as const;
    // Least loaded first by this instance's count; the agent's own limit decides, since other instances place too.
    for (const connection of candidates) {
      const reply = await connection.request({ ...create, requestId: randomUUID() }).catch((error: unknown) => {
        if (error instanceof DomainError && error.code === HOST_ERROR.AT_CAPACITY) return undefined;
        throw error;
      });
      if (!reply) continue;
      if (reply.kind !== 'created') throw new DomainError('HOST.PROTOCOL', `the host answered ${reply.kind} to create`, 'unavailable');
      connection.sandboxes += 1;
      this.sandboxes.set(sandboxId, { connection, redactor: request.redactor, guard: request.guard, runId: request.runId, egress: undefined, ...(reply.sshHostKey ? { sshHostKey: reply.sshHostKey } : {}) });
      return { sandboxId, runId: request.runId, workspace: reply.workspace, isolated: reply.isolated, hostId: connection.hostId };
    }
    throw new DomainError(HOST_ERROR.NO_CAPACITY, `every live sandbox host in ${poolName(request)} holds its limit of sandboxes`, 'unavailable');
  }

  /**
   * The run's sandbox on a live host of its workspace's own hosts or the managed pool (never another workspace's
   * own host: without the workspace nothing is asked). When the run's events name the host it was placed on, only
   * that host is asked: another host of the workspace (its owner's machine, perhaps hostile) is never heard for
   * it. An answer naming another sandbox than the events is refused and recorded. A run recorded before hosts
   * were has every host of its pool asked, and is found only when exactly one host claims its sandbox: a second
   * claimant (a host answering with an id it read from the run) makes it fail closed.
   */
  async find(runId: string, workspaceId?: string, expected: ExpectedSandbox = {}): Promise<SandboxHandle | undefined> {
    if (workspaceId === undefined) return undefined;
    await this.channel.refresh?.();
    const hosts = this.hostsOfRun(workspaceId, expected.hostId);
    const claims: { connection: ChannelConnection; sandbox: NonNullable<Extract<AgentBody, { kind: 'located' }>['sandbox']> }[] = [];
    for (const connection of hosts) {
      const reply = await connection.request({ op: 'locate', requestId: randomUUID(), runId }).catch(() => undefined);
      if (reply?.kind !== 'located' || reply.runId !== runId || !reply.sandbox) continue;
      if (expected.sandboxId !== undefined && reply.sandbox.sandboxId !== expected.sandboxId) {
        connection.refuse?.({ reason: 'foreign-sandbox', messageType: 'located', runId });
        continue;
      }
      claims.push({ connection, sandbox: reply.sandbox });
    }
    if (claims.length > 1) for (const { connection } of claims) connection.refuse?.({ reason: 'foreign-sandbox', messageType: 'located', runId });
    const [claim] = claims;
    if (!claim || claims.length > 1) return undefined;
    const { connection, sandbox: { sandboxId, workspace, isolated, sshHostKey } } = claim;
    this.located.set(sandboxId, { connection, runId, ...(sshHostKey ? { sshHostKey } : {}) });
    return { sandboxId, runId, workspace, isolated, hostId: connection.hostId };
  }

  /**
   * The live hosts that may hold a run's sandbox: its workspace's own hosts and the managed pool, never another
   * workspace's own host; only the recorded one when the run's events name it.
   */
  private hostsOfRun(workspaceId: string, hostId: string | undefined): ChannelConnection[] {
    const pool = this.poolOf(workspaceId);
    return hostId === undefined ? pool : pool.filter((c) => c.hostId === hostId);
  }

  /**
   * Teardown on an instance that does not hold the run's sandbox (the last step ran elsewhere): the agent tears it
   * down with every process in it (MCP servers holding leases included). Sent to the host the run's events name
   * (an older run: every host of its pools; an agent tears down only a sandbox it holds for that run). A host
   * that is not live now removes it when its agent starts again.
   */
  async removeLeftover(sandboxId: string, run?: LeftoverRun): Promise<void> {
    if (!run) return;
    await this.channel.refresh?.();
    this.forget(sandboxId);
    await Promise.all(
      this.hostsOfRun(run.workspaceId, run.hostId).map((connection) =>
        connection.request({ op: 'teardown', requestId: randomUUID(), runId: run.runId, sandboxId }).catch(() => undefined),
      ),
    );
  }

  /**
   * The sweep: sandboxes of runs that are over, on every live host (each host's own list; a teardown goes only to
   * the host that listed it). This instance's own sandboxes are left to their teardown. Returns how many.
   */
  async removeOrphans(runIsOver: (runId: string) => Promise<boolean>): Promise<number> {
    await this.channel.refresh?.();
    let removed = 0;
    for (const connection of this.channel.allLiveHosts()) {
      const reply = await connection.request({ op: 'list', requestId: randomUUID() }).catch(() => undefined);
      if (reply?.kind !== 'listed') continue;
      for (const { sandboxId, runId } of reply.sandboxes) {
        if (this.sandboxes.has(sandboxId) || !(await runIsOver(runId))) continue;
        const done = await connection.request({ op: 'teardown', requestId: randomUUID(), runId, sandboxId }).then(() => true, () => false);
        if (done) removed++;
      }
    }
    return removed;
  }

  private forget(sandboxId: string): void {
    const held = this.sandboxes.get(sandboxId);
    if (held) held.connection.sandboxes = Math.max(0, held.connection.sandboxes - 1);
    this.sandboxes.delete(sandboxId);
    this.located.delete(sandboxId);
  }

  /** Takes the sandbox over: the agent stops the lease-holding processes the previous instance started (any identity), then this one serves it. */
  async adopt(handle: SandboxHandle, request: Pick<SandboxRequest, 'redactor' | 'guard' | 'env' | 'egress'>): Promise<SandboxHandle> {
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const located = this.locatedOf(handle);
    await located.connection.request({ op: 'release', requestId: randomUUID(), runId: handle.runId, sandboxId: handle.sandboxId });
    this.located.delete(handle.sandboxId);
    if (!this.sandboxes.has(handle.sandboxId)) located.connection.sandboxes += 1;
    this.sandboxes.set(handle.sandboxId, this.served(located, request));
    if (request.egress) await located.connection.request({ op: 'setEgress', requestId: randomUUID(), runId: handle.runId, sandboxId: handle.sandboxId, egress: egressFrame(request.egress, this.platformHosts) });
    return handle;
  }

  /** Serves the sandbox beside its holder (nothing of the holder's is stopped) until `leave`. */
  async share(handle: SandboxHandle, request: Pick<SandboxRequest, 'redactor' | 'guard' | 'env'>): Promise<SharedSandbox> {
    if (this.sandboxes.has(handle.sandboxId)) return { handle, leave: async () => undefined };
    const located = this.locatedOf(handle);
    this.located.delete(handle.sandboxId);
    const requested = checkRunSpecEnv({ env: request.env ?? {} }, request.guard);
    if (!requested.ok) throw new LaunchRefusedError(requested);
    const served = this.served(located, request);
    this.sandboxes.set(handle.sandboxId, served);
    return {
      handle,
      leave: async () => {
        if (this.sandboxes.get(handle.sandboxId) === served) this.sandboxes.delete(handle.sandboxId);
      },
    };
  }

  private locatedOf(handle: SandboxHandle): LocatedSandbox {
    const located = this.located.get(handle.sandboxId) ?? this.sandboxes.get(handle.sandboxId);
    if (!located || located.runId !== handle.runId || !located.connection.live) throw new DomainError(SANDBOX_ERROR.GONE, "the run's sandbox is not on a live host", 'gone');
    return located;
  }

  private served(located: LocatedSandbox, request: Pick<SandboxRequest, 'redactor' | 'guard'>): RemoteSandbox {
    return { connection: located.connection, redactor: request.redactor, guard: request.guard, runId: located.runId, egress: undefined, ...(located.sshHostKey ? { sshHostKey: located.sshHostKey } : {}) };
  }

  async exec(handle: SandboxHandle, command: CommandSpec): Promise<CommandResult> {
    const running = await this.launch(handle, command, 'exec');
    return running.exited;
  }

  async start(handle: SandboxHandle, command: CommandSpec): Promise<RunningCommand> {
    return this.launch(handle, command, 'start');
  }

  async teardown(handle: SandboxHandle): Promise<void> {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    if (!sandbox) return;
    this.forget(handle.sandboxId);
    // A host that is gone took its sandboxes with it (the agent removes what a dead process left when it restarts).
    await sandbox.connection.request({ op: 'teardown', requestId: randomUUID(), runId: handle.runId, sandboxId: handle.sandboxId }).catch(() => undefined);
  }

  setEgress(handle: SandboxHandle, allowance: EgressAllowance): void {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    void sandbox?.connection.request({ op: 'setEgress', requestId: randomUUID(), runId: handle.runId, sandboxId: handle.sandboxId, egress: egressFrame(allowance, this.platformHosts) }).catch(() => undefined);
  }

  drainEgress(handle: SandboxHandle): EgressTally | undefined {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    const tally = sandbox?.egress;
    if (sandbox) sandbox.egress = tally ? { allowed: 0, refused: 0, refusals: [] } : undefined;
    return tally;
  }

  /**
   * The host a run's sandbox lives on, while its channel is live (IDE SSH rides that channel): the sandbox this
   * instance serves, or, given the run's workspace, the one a live host of its pool answers `locate` for.
   */
  targetOf(runId: string, workspaceId?: string, expected: ExpectedSandbox = {}): SshTarget | undefined | Promise<SshTarget | undefined> {
    const found = this.sandboxOfRun(runId);
    if (found) return { hostId: found.sandbox.connection.hostId, ...(found.sandbox.sshHostKey ? { hostKey: found.sandbox.sshHostKey } : {}) };
    return workspaceId === undefined ? undefined : this.locateTarget(runId, workspaceId, expected);
  }

  /** The same hosts and checks as `find`: only the recorded host, only the recorded sandbox, one claimant. */
  private async locateTarget(runId: string, workspaceId: string, expected: ExpectedSandbox): Promise<SshTarget | undefined> {
    const handle = await this.find(runId, workspaceId, expected);
    if (!handle) return undefined;
    const located = this.located.get(handle.sandboxId);
    return located ? { hostId: located.connection.hostId, ...(located.sshHostKey ? { hostKey: located.sshHostKey } : {}) } : undefined;
  }

  /** The live hosts a workspace's run may be on: its own, then the managed pool (never another workspace's). */
  private poolOf(workspaceId: string): ChannelConnection[] {
    return [...this.channel.liveHosts(workspaceId), ...(workspaceId === PLATFORM_PARTITION ? [] : this.channel.liveHosts(PLATFORM_PARTITION))];
  }

  /** Opens an IDE SSH session into a run's sandbox over its host's channel (the ticket was redeemed by the caller). */
  openSshTunnel(runId: string, listener: SshTunnelListener): SshTunnel | undefined {
    const found = this.sandboxOfRun(runId);
    return found?.sandbox.connection.openSshTunnel?.(runId, found.sandboxId, listener);
  }

  private sandboxOfRun(runId: string): { sandboxId: string; sandbox: RemoteSandbox } | undefined {
    for (const [sandboxId, sandbox] of this.sandboxes) if (sandbox.runId === runId && sandbox.connection.live) return { sandboxId, sandbox };
    return undefined;
  }

  /** The live hosts of the run's pool, each part least loaded first: never another workspace's own host. */
  private place(request: SandboxRequest): ChannelConnection[] {
    const workspaceId = request.placement?.workspaceId;
    const pool = request.placement?.pool;
    const own = workspaceId !== undefined && pool !== 'managed' ? this.channel.liveHosts(workspaceId) : [];
    const managed = pool !== 'workspace' ? this.channel.liveHosts(PLATFORM_PARTITION) : [];
    // The workspace's own hosts first; the managed pool when none is live or every one is full.
    const candidates = [...own.sort(byLoad), ...managed.sort(byLoad)];
    if (candidates.length === 0) throw new DomainError(HOST_ERROR.NONE_LIVE, `no live sandbox host in ${poolName(request)}`, 'unavailable');
    return candidates;
  }

  private async launch(handle: SandboxHandle, command: CommandSpec, mode: 'exec' | 'start'): Promise<RunningCommand> {
    const sandbox = this.sandboxes.get(handle.sandboxId);
    if (!sandbox) throw new DomainError('SANDBOX.GONE', 'the sandbox was torn down', 'gone');
    // The launcher's check, here before anything is prepared or sent: the command's env, then its arguments.
    const envDecision = checkStandingEnv(command.env ?? {}, sandbox.guard);
    const decision = envDecision.ok ? checkValues(argvEntries(command.argv), sandbox.guard) : envDecision;
    if (!decision.ok) throw new LaunchRefusedError(decision);
    const wire: WireCommand = {
      argv: [...command.argv], identity: command.identity, deliveries: await prepareDeliveries(command),
      ...(command.env ? { env: { ...command.env } } : {}), ...(command.cwd ? { cwd: command.cwd } : {}),
      ...(command.handOver ? { handOver: { into: command.handOver.into } } : {}),
      ...(command.timeoutMs ? { timeoutMs: command.timeoutMs } : {}), ...(command.maxOutputBytes ? { maxOutputBytes: command.maxOutputBytes } : {}),
      ...(command.onOutput ? { streamOutput: true } : {}),
      ...(command.stdin ? { stdin: true } : {}),
    };
    if (command.stdin && wire.deliveries.some((d) => d.stdin !== undefined)) throw new InputConflictError();
    const execId = randomUUID();
    const { connection, redactor } = sandbox;
    const exited = connection.awaitExit(execId, handle.runId, command.onOutput ? streamedOutput(redactor, command.onOutput) : undefined).then((body) => {
      if (body.kind !== 'exited') throw new DomainError('HOST.PROTOCOL', 'expected an exit', 'unavailable');
      if (body.egress) sandbox.egress = addTallies(sandbox.egress, body.egress);
      return { ...body.result, stdout: redactor.redact(body.result.stdout), stderr: redactor.redact(body.result.stderr) };
    });
    exited.catch(() => undefined);
    const stop = async (): Promise<CommandResult> => {
      await connection.request({ op: 'stop', requestId: randomUUID(), runId: handle.runId, execId }).catch(() => undefined);
      return exited;
    };
    const onAbort = (): void => void stop();
    command.signal?.addEventListener('abort', onAbort, { once: true });
    void exited.finally(() => command.signal?.removeEventListener('abort', onAbort)).catch(() => undefined);
    const reply = await connection.request({ op: 'exec', requestId: randomUUID(), runId: handle.runId, sandboxId: handle.sandboxId, execId, mode, command: wire });
    if (command.stdin) void sendInput(connection, handle.runId, execId, command.stdin, exited).catch(() => undefined);
    return { pid: reply.kind === 'started' ? reply.pid : -1, exited, stop };
  }
}

/**
 * Prepares the process's deliveries here, in a staging directory, and turns them into what the channel carries:
 * env, args and stdin with the directory's path as a placeholder, and each file's content. The staging copy is
 * removed at once; the agent writes the files into the process's own credential directory.
 */
async function prepareDeliveries(command: CommandSpec): Promise<WireDelivery[]> {
  if (!command.credentials) return [];
  const staging = await mkdtemp(path.join(os.tmpdir(), 'dp-remote-stage-'));
  let deliveries: readonly ProcessCredentialDelivery[] = [];
  try {
    // The process's real directory and egress proxy are the agent's: placeholders here, filled in there.
    const target: DeliveryTarget = { credentialDir: staging, egressProxy: EGRESS_PROXY_PLACEHOLDER };
    deliveries = await command.credentials(target);
    const swap = (text: string): string => text.split(staging).join(CREDENTIAL_DIR_PLACEHOLDER);
    const wire: WireDelivery[] = [];
    for (const delivery of deliveries) {
      const files: WireDelivery['files'][number][] = [];
      const entries = await entriesUnder(staging, delivery.paths);
      for (const file of entries.files) {
        const info = await stat(file);
        // A file may name another of the delivery (git's helper names its token file): by the placeholder too.
        const content = Buffer.from(swap((await readFile(file)).toString('latin1')), 'latin1');
        files.push({ path: path.relative(staging, file), base64: content.toString('base64'), mode: info.mode & 0o777 });
      }
      wire.push({
        env: Object.fromEntries(Object.entries(delivery.env).map(([k, v]) => [k, swap(v)])),
        argsAfterCommand: delivery.argsAfterCommand.map(swap),
        ...(delivery.stdin !== undefined ? { stdin: swap(delivery.stdin) } : {}),
        files,
        ...(entries.dirs.length > 0 ? { dirs: await Promise.all(entries.dirs.map(async (dir) => ({ path: path.relative(staging, dir), mode: (await stat(dir)).mode & 0o777 }))) } : {}),
      });
    }
    return wire;
  } finally {
    for (const delivery of deliveries) await delivery.cleanup().catch(() => undefined);
    await rm(staging, { recursive: true, force: true });
  }
}

/** The delivery's files and directories under the staging directory, each directory before what it holds. */
async function entriesUnder(staging: string, paths: readonly string[], found: { files: string[]; dirs: string[] } = { files: [], dirs: [] }): Promise<{ files: string[]; dirs: string[] }> {
  for (const entry of paths) {
    if (!path.resolve(entry).startsWith(staging + path.sep)) continue;
    const info = await stat(entry).catch(() => undefined);
    if (info?.isFile()) found.files.push(entry);
    else if (info?.isDirectory()) {
      found.dirs.push(entry);
      await entriesUnder(staging, (await readdir(entry)).map((name) => path.join(entry, name)), found);
    }
  }
  return found;
}

/** What the platform passes on of a host's streamed output, per process and stream (a hostile agent cannot flood past it). */
export const MAX_STREAMED_BYTES = 4 * 1024 * 1024;

/**
 * Redacts streamed chunks with the workspace's redactor in its stream form, so a value split across chunks is
 * still caught. The stream is never ended: what the redactor holds back (a possible start of a value) is not
 * passed on, and the whole output arrives, redacted as a whole, with the exit.
 */
function streamedOutput(redactor: OutputRedactor, onOutput: NonNullable<CommandSpec['onOutput']>): (stream: 'stdout' | 'stderr', text: string) => void {
  const streams = { stdout: { redacting: redactor.stream(), bytes: 0 }, stderr: { redacting: redactor.stream(), bytes: 0 } };
  return (name, text) => {
    const stream = streams[name];
    if (stream.bytes >= MAX_STREAMED_BYTES) return;
    stream.bytes += Buffer.byteLength(text);
    const safe = stream.redacting.push(text);
    if (safe !== '') onOutput(name, safe);
  };
}

function addTallies(a: EgressTally | undefined, b: EgressTally): EgressTally {
  if (!a) return b;
  return { allowed: a.allowed + b.allowed, refused: a.refused + b.refused, refusals: [...a.refusals, ...b.refusals].slice(0, 100) };
}

/** The allowance as the channel carries it, with the platform's own hosts the agent's proxy must refuse. */
function egressFrame(allowance: EgressAllowance, platformHosts: readonly string[]): { layers: string[][]; refuse?: string[] } {
  const refuse = [...new Set([...(allowance.refuse ?? []), ...platformHosts])];
  return { layers: allowance.layers.map((l) => [...l]), ...(refuse.length > 0 ? { refuse } : {}) };
}
