
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WebSocket } from 'ws';
import { HOST_ERROR } from '../../../domain/catalogue';
import { DomainError } from '../../../domain/errors';
import type { CommandResult, CommandSpec, OutputRedactor, ProcessCredentialDelivery, RunningCommand, SandboxHandle, SandboxHost } from '../../../domain/ports/sandboxHost';
import { type RedactableSecret, createRedactor } from '../../../domain/redaction';
import type { DeliveryTarget } from '../credentialDelivery';
import { OutputStreamer } from './outputStreaming';
import { AgentSshServer, type RunAsAgent } from './agentSshServer';
import { FrameInput, StdinRefusedError } from './agentStdin';
import { CLOSE_REVOKED } from './hostChannelServer';
import { CHANNEL_PATH, CREDENTIAL_DIR_PLACEHOLDER, ChannelSequence, EGRESS_PROXY_PLACEHOLDER, type WireEgressTally, type PlatformBody, type PlatformFrame, type WireCommand, type WireDelivery, platformFrame } from './protocol';

export interface HostAgentOptions {
  /** The platform's host endpoint, `https://…` only: the channel is `wss://` on the same origin. */
  readonly platform: string;
  /** The one-time enrolment token; needed only until the agent holds a credential. */
  readonly token?: string;
  /** The CA (or self-signed certificate) the platform's TLS certificate must chain to; verification is never off. */
  readonly ca?: string;
  /** Where the host credential is kept (mode 0600). */
  readonly stateFile: string;
  /** The host the agent owns and runs sandboxes on (local process or Docker). */
  readonly inner: SandboxHost;
  readonly log?: (line: string) => void;
  /** A managed-pool machine: its managed identity's Entra ID token, used instead of an enrolment token. */
  readonly identityToken?: () => Promise<string>;
  /** Opens the channel another way than a direct wss:// to the platform (Web PubSub: webPubSubClientSocket.ts). */
  readonly dial?: (credential: string) => AgentChannelSocket;
  /** How many sandboxes this machine holds at once; a create beyond it is refused `HOST.AT_CAPACITY`. */
  readonly maxSandboxes?: number;
}

/** Sandboxes an agent holds when `--max-sandboxes` does not say. */
export const DEFAULT_MAX_SANDBOXES = 16;

/** What the agent needs of its channel's socket: a `ws` WebSocket, or anything shaped like one. */
export interface AgentChannelSocket {
  readonly readyState: number;
  /** Bytes queued but not yet sent: the agent stops streaming output when this backs up. */
  readonly bufferedAmount: number;
  send(raw: string): void;
  close(code?: number, reason?: string): void;
  on(event: 'message', listener: (data: unknown) => void): unknown;
  on(event: 'unexpected-response', listener: (req: unknown, res: { statusCode?: number }) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'close', listener: (code: number) => void): unknown;
}

interface AgentSandbox {
  readonly handle: SandboxHandle;
  readonly secrets: RedactableSecret[];
}

/**
 * The host agent: enrols once, then dials out to the platform over TLS, authenticates with its host credential
 * and serves the sandbox protocol with its inner host. It redacts each process's output of what it delivered
 * to it (the platform redacts again with the workspace's redactor). Resolves when the platform revokes it.
 */
export class HostAgent {
  private socket: AgentChannelSocket | undefined;
  private stopped = false;
  private readonly sandboxes = new Map<string, AgentSandbox>();
  /** Creates under way: counted against the limit before the inner host answers, so two at once cannot both pass. */
  private creating = 0;
  /** `leased`: a credential process, or one given a delivery (a turn holds the model key as the agent identity). */
  private readonly running = new Map<string, { runId: string; sandboxId: string; leased: boolean; input?: FrameInput; stop(): Promise<unknown> }>();
  private readonly log: (line: string) => void;
  /** Where frames go on the current channel (IDE SSH sessions send through it). */
  private sendCurrent: (body: unknown) => void = () => undefined;
  private readonly ssh = new AgentSshServer((body) => this.sendCurrent(body), (line) => this.log(line));

  constructor(private readonly options: HostAgentOptions) {
    if (!options.platform.startsWith('https://')) throw new Error('--platform must be an https:// URL: the channel runs over TLS only');
    this.log = options.log ?? ((line) => console.log(line));
  }

  /** Runs until revoked (resolves 'revoked') or stopped. Reconnects after any other disconnect. */
  async run(): Promise<'revoked' | 'stopped'> {
    const credential = await this.credential();
    // What an earlier agent process left (killed outright) is nobody's now: the platform failed those runs with
    // HOST.GONE when its channel dropped, and a new channel never names them again.
    const removed = await this.options.inner.removeOrphans?.(async () => true).catch(() => 0);
    if (removed) this.log(`host agent: removed ${removed} sandbox(es) an earlier agent left`);
    while (!this.stopped) {
      const outcome = await this.connectOnce(credential).catch((error: unknown) => {
        this.log(`host agent: channel failed: ${(error as Error).message}`);
        return 'retry' as const;
      });
      await this.teardownAll();
      if (outcome === 'revoked') return 'revoked';
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, 500));
    }
    return 'stopped';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.socket?.close(1001, 'agent stopping');
    await this.teardownAll();
  }

  /** The saved credential, rotated at every start (so a copy taken from disk earlier is already dead), or a new one. */
  private async credential(): Promise<string> {
    const saved = await readFile(this.options.stateFile, 'utf8').then((text) => (JSON.parse(text) as { credential?: string }).credential).catch(() => undefined);
    if (saved) {
      const rotated = await fetchJson(`${this.options.platform}/api/hosts/rotate`, {}, this.options.ca, saved);
      if (typeof rotated.credential !== 'string') throw new Error(`credential rotation refused (${String(rotated.code ?? 'unknown')})`);
      await writeFile(this.options.stateFile, JSON.stringify({ credential: rotated.credential }), { mode: 0o600 });
      this.log('host agent: host credential rotated');
      return rotated.credential;
    }
    const { token, identityToken } = this.options;
    if (!token && !identityToken) throw new Error('no host credential yet: pass --token <enrolment token>');
    const response = token
      ? await fetchJson(`${this.options.platform}/api/hosts/enrol`, { token }, this.options.ca)
      : await fetchJson(`${this.options.platform}/api/hosts/enrol-managed`, {}, this.options.ca, identityToken ? await identityToken() : undefined);
    if (typeof response.credential !== 'string') throw new Error(`enrolment refused (${String(response.code ?? response.status ?? 'unknown')})`);
    await mkdir(path.dirname(this.options.stateFile), { recursive: true, mode: 0o700 });
    await writeFile(this.options.stateFile, JSON.stringify({ credential: response.credential }), { mode: 0o600 });
    this.log(`host agent: enrolled as host ${String(response.hostId)} of workspace ${String(response.workspaceId)}`);
    return response.credential;
  }

  private connectOnce(credential: string): Promise<'revoked' | 'retry'> {
    const url = this.options.platform.replace(/^https:/, 'wss:') + CHANNEL_PATH;
    const socket: AgentChannelSocket = this.options.dial ? this.options.dial(credential) : new WebSocket(url, { headers: { authorization: `Bearer ${credential}` }, ...(this.options.ca ? { ca: this.options.ca } : {}), maxPayload: 4 * 1024 * 1024 });
    this.socket = socket;
    let sequence: ChannelSequence | undefined;
    const [workspaceId, hostId] = credential.slice('dph_'.length).split('.');
    const send = (body: unknown): void => {
      if (sequence && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(sequence.stamp(body)));
    };
    this.sendCurrent = send;
    const heartbeat = setInterval(() => send({ kind: 'heartbeat' }), 5000);
    return new Promise((resolve, reject) => {
      socket.on('message', (data) => {
        const raw = String(data);
        if (!sequence) {
          const first = platformFrame.safeParse(JSON.parse(raw));
          if (!first.success || first.data.body.op !== 'session' || first.data.seq !== 1 || first.data.hostId !== hostId || first.data.workspaceId !== workspaceId) {
            this.log('host agent: the platform opened with a frame that is not a session for this host; closing');
            socket.close(1008, 'bad session');
            return;
          }
          sequence = new ChannelSequence({ hostId, workspaceId, session: first.data.session });
          sequence.admit(platformFrame, raw);
          send({ kind: 'ready', capabilities: this.options.inner.capabilities });
          this.log(`host agent: connected (host ${hostId})`);
          return;
        }
        const admitted = sequence.admit<PlatformFrame>(platformFrame, raw);
        if (!admitted.ok) {
          this.log(`host agent: refused a ${admitted.messageType} frame (${admitted.reason})`);
          return;
        }
        void this.serve(admitted.frame.body, send, () => socket.bufferedAmount);
      });
      socket.on('unexpected-response', (_req, res) => reject(new Error(`the platform refused the channel (HTTP ${res.statusCode})`)));
      socket.on('error', (error) => reject(error));
      socket.on('close', (code) => {
        clearInterval(heartbeat);
        if (code === CLOSE_REVOKED) this.log('host agent: the platform revoked this host; stopping');
        resolve(code === CLOSE_REVOKED ? 'revoked' : 'retry');
      });
    });
  }

  private async serve(body: PlatformBody, send: (body: unknown) => void, backlog: () => number): Promise<void> {
    if (body.op === 'session') return;
    if (body.op === 'sshOpen' || body.op === 'sshData' || body.op === 'sshClose') return this.ssh.handle(body, (sandboxId) => this.runAsAgent(sandboxId, body.runId));
    const requestId = body.requestId;
    const runId = 'runId' in body ? body.runId : undefined;
    try {
      switch (body.op) {
        case 'create': {
          // The agent's own count is the one every app instance shares: an instance's tally sees only its own placements.
          const limit = this.options.maxSandboxes ?? DEFAULT_MAX_SANDBOXES;
          if (this.sandboxes.size + this.creating >= limit) throw new DomainError(HOST_ERROR.AT_CAPACITY, `the host holds its limit of ${limit} sandboxes`, 'unavailable');
          const secrets: RedactableSecret[] = [];
          this.creating += 1;
          const handle = await this.options.inner.create({
            runId: body.runId, files: body.files, redactor: redactorOf(secrets), guard: { secretNames: [], managedValues: [] },
            ...(body.env ? { env: body.env } : {}), ...(body.keptVolume ? { keptVolume: body.keptVolume } : {}), ...(body.egress ? { egress: body.egress } : {}),
          }).finally(() => (this.creating -= 1));
          this.sandboxes.set(body.sandboxId, { handle, secrets });
          return send({ kind: 'created', requestId, runId: body.runId, sandboxId: body.sandboxId, workspace: handle.workspace, isolated: handle.isolated, sshHostKey: this.ssh.hostKeyFor(body.sandboxId) });
        }
        case 'exec': {
          const sandbox = this.sandboxOf(body.sandboxId, body.runId);
          const controller = new AbortController();
          const { runId: execRunId, execId } = body;
          const streamer = body.command.streamOutput
            ? new OutputStreamer((stream, text) => send({ kind: 'output', runId: execRunId, execId, stream, text }), backlog)
            : undefined;
          const leased = body.command.identity === 'credential' || body.command.deliveries.length > 0;
          // Its stdin comes in `stdin` frames (never a value: a delivery that claims stdin refuses it in the launcher).
          const input = body.command.stdin === true ? new FrameInput(body.runId) : undefined;
          const spec = {
            ...commandSpecOf(body.command, sandbox.secrets, controller.signal), ...(input ? { stdin: input } : {}),
            ...(streamer ? { onOutput: (stream: 'stdout' | 'stderr', text: string) => streamer.push(stream, text) } : {}),
          };
          if (body.mode === 'start') {
            const process = await this.options.inner.start(sandbox.handle, spec).catch((error: unknown) => {
              input?.close();
              throw error;
            });
            this.running.set(body.execId, { runId: body.runId, sandboxId: body.sandboxId, leased, ...(input ? { input } : {}), stop: () => process.stop() });
            void this.reportExit(process, sandbox.handle, body.execId, send, streamer, input);
            return send({ kind: 'started', requestId, runId: body.runId, execId: body.execId, pid: process.pid });
          }
          const exited = this.options.inner.exec(sandbox.handle, spec);
          // Stopped means gone: a take-over (`release`) resolves only once the process has ended.
          this.running.set(body.execId, { runId: body.runId, sandboxId: body.sandboxId, leased, ...(input ? { input } : {}), stop: async () => { controller.abort(); await exited.catch(() => undefined); } });
          send({ kind: 'started', requestId, runId: body.runId, execId: body.execId, pid: -1 });
          return void this.reportExit({ pid: -1, exited, stop: () => exited }, sandbox.handle, body.execId, send, streamer, input);
        }
        case 'stop': {
          const process = this.running.get(body.execId);
          if (process && process.runId !== body.runId) throw new DomainError(HOST_ERROR.FOREIGN_RUN, 'that process belongs to another run', 'forbidden');
          await process?.stop();
          return send({ kind: 'done', requestId, runId: body.runId });
        }
        case 'stdin':
        case 'stdinEnd': {
          const input = this.inputOf(body.execId, body.runId);
          await (body.op === 'stdin' ? input.push(body.offset, Buffer.from(body.data, 'base64')) : input.end(body.offset));
          return send({ kind: 'done', requestId, runId: body.runId });
        }
        case 'teardown': {
          const sandbox = this.sandboxes.get(body.sandboxId);
          if (sandbox && sandbox.handle.runId !== body.runId) throw new DomainError(HOST_ERROR.FOREIGN_RUN, 'that sandbox belongs to another run', 'forbidden');
          this.sandboxes.delete(body.sandboxId);
          this.ssh.endSandbox(body.sandboxId, 'the sandbox was torn down');
          if (sandbox) await this.options.inner.teardown(sandbox.handle);
          return send({ kind: 'done', requestId, runId: body.runId });
        }
        case 'setEgress': {
          this.options.inner.setEgress(this.sandboxOf(body.sandboxId, body.runId).handle, body.egress);
          return send({ kind: 'done', requestId, runId: body.runId });
        }
        case 'locate': {
          const found = [...this.sandboxes].find(([, s]) => s.handle.runId === body.runId);
          const sandbox = found ? { sandboxId: found[0], workspace: found[1].handle.workspace, isolated: found[1].handle.isolated, sshHostKey: this.ssh.hostKeyFor(found[0]) } : undefined;
          return send({ kind: 'located', requestId, runId: body.runId, ...(sandbox ? { sandbox } : {}) });
        }
        case 'release': {
          // Another app instance takes the sandbox over: whatever holds a lease the previous one supervised stops now,
          // whatever its identity (a turn runs as the agent with the model key), before the take-over is answered.
          this.sandboxOf(body.sandboxId, body.runId);
          const leased = [...this.running].filter(([, p]) => p.sandboxId === body.sandboxId && p.leased);
          await Promise.all(leased.map(([, p]) => p.stop().catch(() => undefined)));
          return send({ kind: 'done', requestId, runId: body.runId });
        }
        case 'list':
          return send({ kind: 'listed', requestId, sandboxes: [...this.sandboxes].map(([sandboxId, s]) => ({ sandboxId, runId: s.handle.runId })) });
        default: {
          const _exhaustive: never = body;
          return _exhaustive;
        }
      }
    } catch (error) {
      const known = error instanceof DomainError ? { code: error.code, errorKind: error.kind } : { code: 'HOST.AGENT_ERROR' };
      if (error instanceof StdinRefusedError && error.code !== 'HOST.STDIN_CLOSED') this.log(`host agent: refused a ${body.op} frame for run ${runId ?? '?'} (${error.code})`);
      send({ kind: 'failed', requestId, ...(runId ? { runId } : {}), ...known, message: (error as Error).message.slice(0, 2000) });
    }
  }

  /**
   * An IDE SSH session's commands: as the agent identity, in the sandbox, with the sandbox's standing env only (no
   * delivery, so no lease and no gateway bearer), output through the sandbox's redactor before ssh2 encrypts it.
   */
  private runAsAgent(sandboxId: string, runId: string): RunAsAgent | undefined {
    const sandbox = this.sandboxes.get(sandboxId);
    if (!sandbox || sandbox.handle.runId !== runId) return undefined;
    return (request, onOutput) => this.options.inner.start(sandbox.handle, { argv: request.argv, identity: 'agent', stdin: request.stdin, ...(request.env ? { env: request.env } : {}), onOutput });
  }

  /**
   * The stdin of a process the platform started in that run with `stdin: true`. Anything else is refused: a process
   * the platform did not start (an SSH session's, one already gone), another run's, one whose stdin is not open to
   * frames (a `stdin` lease's process among them).
   */
  private inputOf(execId: string, runId: string): FrameInput {
    const process = this.running.get(execId);
    if (!process) throw new StdinRefusedError('HOST.NO_SUCH_PROCESS', 'no process of that id was started here by the platform', 'not_found');
    if (process.runId !== runId) throw new StdinRefusedError(HOST_ERROR.FOREIGN_RUN, 'that process belongs to another run', 'forbidden');
    if (!process.input) throw new StdinRefusedError('HOST.NO_STDIN', 'that process was started without stdin', 'forbidden');
    return process.input;
  }

  private sandboxOf(sandboxId: string, runId: string): AgentSandbox {
    const sandbox = this.sandboxes.get(sandboxId);
    if (!sandbox) throw new DomainError('SANDBOX.GONE', 'no such sandbox on this host', 'gone');
    if (sandbox.handle.runId !== runId) throw new DomainError(HOST_ERROR.FOREIGN_RUN, 'that sandbox belongs to another run', 'forbidden');
    return sandbox;
  }

  private async reportExit(process: RunningCommand, handle: SandboxHandle, execId: string, send: (body: unknown) => void, streamer?: OutputStreamer, input?: FrameInput): Promise<void> {
    const runId = handle.runId;
    let result: CommandResult;
    try {
      result = await process.exited;
    } catch (error) {
      result = { exitCode: null, signal: null, stdout: '', stderr: `host agent: ${(error as Error).message.slice(0, 500)}`, truncated: false, timedOut: false, cancelled: false };
    }
    this.running.delete(execId);
    input?.close();
    streamer?.end();
    // The egress decisions ride with each process's end: the platform's drainEgress is synchronous.
    const egress = this.egressOf(handle);
    send({ kind: 'exited', runId, execId, result, ...(egress ? { egress } : {}) });
  }

  private egressOf(handle: SandboxHandle): WireEgressTally | undefined {
    try {
      const tally = this.options.inner.drainEgress(handle);
      return tally ? { allowed: tally.allowed, refused: tally.refused, refusals: tally.refusals.slice(0, 100).map((r) => ({ host: r.host.slice(0, 260), port: r.port, reason: r.reason.slice(0, 256) })) } : undefined;
    } catch {
      return undefined; // torn down meanwhile
    }
  }

  private async teardownAll(): Promise<void> {
    this.ssh.endAll();
    const all = [...this.sandboxes.values()];
    this.sandboxes.clear();
    this.running.clear();
    await Promise.all(all.map((s) => this.options.inner.teardown(s.handle).catch(() => undefined)));
  }
}

/** A redactor over the values delivered in this sandbox so far (rebuilt when one is added). */
function redactorOf(secrets: RedactableSecret[]): OutputRedactor {
  let built = { count: -1, redactor: createRedactor([]) };
  const current = (): ReturnType<typeof createRedactor> => {
    if (built.count !== secrets.length) built = { count: secrets.length, redactor: createRedactor(secrets) };
    return built.redactor;
  };
  return { redact: (text) => current().redact(text), stream: () => current().stream() };
}

function commandSpecOf(command: WireCommand, secrets: RedactableSecret[], signal: AbortSignal): CommandSpec {
  for (const delivery of command.deliveries) secrets.push(...valuesOf(delivery));
  return {
    argv: command.argv, identity: command.identity, signal,
    ...(command.env ? { env: command.env } : {}), ...(command.cwd ? { cwd: command.cwd } : {}), ...(command.handOver ? { handOver: command.handOver } : {}),
    ...(command.timeoutMs ? { timeoutMs: command.timeoutMs } : {}), ...(command.maxOutputBytes ? { maxOutputBytes: command.maxOutputBytes } : {}),
    ...(command.deliveries.length > 0 ? { credentials: (target: DeliveryTarget) => Promise.all(command.deliveries.map((d) => materialise(d, target))) } : {}),
  };
}

/** What a delivery carries that output must never show (values long enough to mask reliably). */
function valuesOf(delivery: WireDelivery): RedactableSecret[] {
  const texts = [...Object.values(delivery.env), ...(delivery.stdin ? [delivery.stdin] : []), ...delivery.files.map((f) => Buffer.from(f.base64, 'base64').toString('utf8'))];
  return texts.filter((t) => Buffer.byteLength(t) >= 8 && !t.includes(CREDENTIAL_DIR_PLACEHOLDER)).map((value) => ({ name: 'DELIVERED', value }));
}

async function materialise(delivery: WireDelivery, target: DeliveryTarget): Promise<ProcessCredentialDelivery> {
  const swap = (text: string): string => text.split(CREDENTIAL_DIR_PLACEHOLDER).join(target.credentialDir).split(EGRESS_PROXY_PLACEHOLDER).join(target.egressProxy ?? '');
  const paths: string[] = [];
  const inside = (relative: string): string => {
    const destination = path.join(target.credentialDir, relative);
    if (!destination.startsWith(target.credentialDir + path.sep)) throw new DomainError('HOST.BAD_DELIVERY', 'a delivery file escapes its directory', 'invalid');
    return destination;
  };
  // Directories first, each the process's own: a file's parent made only by `mkdir -p` would be the agent's, closed to it.
  for (const dir of delivery.dirs ?? []) {
    const destination = inside(dir.path);
    await mkdir(destination, { recursive: true, mode: dir.mode });
    await chmod(destination, dir.mode);
    if (target.uid !== undefined) await chown(destination, target.uid, target.gid ?? target.uid);
    paths.push(destination);
  }
  for (const file of delivery.files) {
    const destination = inside(file.path);
    await mkdir(path.dirname(destination), { recursive: true, mode: 0o700 });
    await writeFile(destination, Buffer.from(swap(Buffer.from(file.base64, 'base64').toString('latin1')), 'latin1'), { mode: file.mode });
    if (target.uid !== undefined) await chown(destination, target.uid, target.gid ?? target.uid);
    paths.push(destination);
  }
  const { rm } = await import('node:fs/promises');
  return {
    env: Object.fromEntries(Object.entries(delivery.env).map(([k, v]) => [k, swap(v)])),
    argsAfterCommand: delivery.argsAfterCommand.map(swap),
    ...(delivery.stdin !== undefined ? { stdin: swap(delivery.stdin) } : {}),
    paths,
    cleanup: async () => {
      await Promise.all(paths.map((p) => rm(p, { recursive: true, force: true })));
    },
  };
}

async function fetchJson(url: string, body: unknown, ca: string | undefined, credential?: string): Promise<Record<string, unknown>> {
  const { request } = await import('node:https');
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(credential ? { authorization: `Bearer ${credential}` } : {}) };
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, ...(ca ? { ca } : {}) }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('end', () => {
        try {
          resolve(JSON.parse(text) as Record<string, unknown>);
        } catch {
          reject(new Error(`the platform answered ${res.statusCode ?? 0} without JSON`));
        }
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

