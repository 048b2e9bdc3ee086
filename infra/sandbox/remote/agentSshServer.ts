import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { type PseudoTtyInfo, Server, type ServerChannel, utils } from 'ssh2';
import type { CommandResult, ProcessInput, RunningCommand } from '../../../domain/ports/sandboxHost';
import { type PlatformBody, SSH_CHUNK_BYTES } from './protocol';

/** One process an SSH session runs in its sandbox: as the agent identity, holding no lease, its stdin the channel's. */
export interface AgentProcessRequest {
  readonly argv: readonly string[];
  readonly stdin: ProcessInput;
  /** Only the terminal's type (TERM), when the client asked for a terminal; never the client's environment. */
  readonly env?: Readonly<Record<string, string>>;
}

/** What an SSH session may do in its sandbox. */
export type RunAsAgent = (request: AgentProcessRequest, onOutput: (stream: 'stdout' | 'stderr', text: string) => void) => Promise<RunningCommand>;

/**
 * The bytes a session may queue in either direction before it is cut: towards the platform (a client that reads
 * nothing cannot grow the agent), and of the client's input not yet taken by its processes (ssh2's channel window
 * holds a well-behaved client back long before; one that ignores the window is cut here).
 */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/** A terminal the client asked for (`pty-req`): its type and size, applied once when the process starts. */
interface Terminal {
  readonly term: string;
  readonly rows: number;
  readonly cols: number;
}

/**
 * Runs "$1" on a pseudo-terminal of its own when the sandbox can make one (util-linux `script` in the image or on
 * the machine, and a devpts: the local sandbox root mounts its own instance, a container has the engine's), sized
 * to "$2" rows and "$3" columns; else plainly, without a terminal.
 */
const ON_A_TERMINAL = 'if command -v script >/dev/null 2>&1 && [ -c /dev/ptmx ]; then exec script -qfec "stty rows $2 cols $3 2>/dev/null; $1" /dev/null; fi; exec sh -c "$1"';

/** The argv of an `exec` (a command) or a `shell` (none): `sh -c`/`sh -i`, on a terminal when one was asked for. */
export function sessionArgv(command: string | undefined, terminal: Terminal | undefined): string[] {
  if (!terminal) return command === undefined ? ['sh', '-i'] : ['sh', '-c', command];
  return ['sh', '-c', ON_A_TERMINAL, 'dp-ssh', command ?? 'exec sh -i', String(terminal.rows), String(terminal.cols)];
}

function terminalOf(info: PseudoTtyInfo): Terminal {
  const size = (n: number, fallback: number): number => (Number.isInteger(n) && n > 0 && n <= 1000 ? n : fallback);
  return { term: /^[A-Za-z0-9._+-]{1,64}$/.test(info.term) ? info.term : 'xterm', rows: size(info.rows, 24), cols: size(info.cols, 80) };
}

/** Sessions one sandbox may have open at once (an IDE opens a few; more is a client gone wrong). */
export const MAX_SESSIONS_PER_SANDBOX = 8;

interface Tunnel {
  readonly runId: string;
  readonly sandboxId: string;
  readonly socket: Duplex;
  closedByPlatform: boolean;
  readonly processes: Set<RunningCommand>;
  /** Its open channels, whose unread input counts towards MAX_QUEUED_BYTES. */
  readonly channels: Set<ServerChannel>;
}

type SshBody = Extract<PlatformBody, { op: 'sshOpen' | 'sshData' | 'sshClose' }>;

/**
 * The host agent's SSH server for IDE sessions (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel): an `ssh2`
 * server per session, in memory, fed by the channel's `sshData` frames instead of a listening port. Each sandbox
 * has its own ephemeral host key, reported to the platform so the client can pin it. The tunnel reached the agent
 * only after the platform redeemed a single-use ticket, so the SSH user authentication accepts `none` and nothing
 * else: there is no password or key to steal, and a client that skipped the ticket never gets a tunnel. `exec` and
 * `shell` run as the agent identity with the channel as stdin, on a terminal of their own when the client asked.
 */
export class AgentSshServer {
  private readonly hostKeys = new Map<string, { private: string; public: string }>();
  private readonly tunnels = new Map<string, Tunnel>();

  constructor(private readonly send: (body: unknown) => void, private readonly log: (line: string) => void) {}

  /** A new sandbox's host key (OpenSSH public form), made once and forgotten at teardown. */
  hostKeyFor(sandboxId: string): string {
    let key = this.hostKeys.get(sandboxId);
    if (!key) {
      const pair = utils.generateKeyPairSync('ed25519');
      key = { private: pair.private, public: pair.public.split(' ').slice(0, 2).join(' ') };
      this.hostKeys.set(sandboxId, key);
    }
    return key.public;
  }

  /** `runAs` is undefined when the frame names a sandbox this agent does not hold for that run. */
  handle(body: SshBody, runAs: (sandboxId: string) => RunAsAgent | undefined): void {
    switch (body.op) {
      case 'sshOpen':
        return this.open(body, runAs(body.sandboxId));
      case 'sshData': {
        const tunnel = this.tunnels.get(body.tunnelId);
        if (tunnel?.runId !== body.runId) return;
        tunnel.socket.push(Buffer.from(body.data, 'base64'));
        let queued = tunnel.socket.readableLength;
        for (const channel of tunnel.channels) queued += channel.readableLength;
        if (queued > MAX_QUEUED_BYTES) this.end(body.tunnelId, tunnel, 'the session backed up');
        return;
      }
      case 'sshClose': {
        const tunnel = this.tunnels.get(body.tunnelId);
        if (tunnel?.runId !== body.runId) return;
        tunnel.closedByPlatform = true;
        this.end(body.tunnelId, tunnel);
        return;
      }
      default: {
        const _exhaustive: never = body;
        return _exhaustive;
      }
    }
  }

  /** The sandbox is going: its sessions end (the client sees the connection close) and its key is forgotten. */
  endSandbox(sandboxId: string, reason: string): void {
    this.hostKeys.delete(sandboxId);
    for (const [tunnelId, tunnel] of this.tunnels) if (tunnel.sandboxId === sandboxId) this.end(tunnelId, tunnel, reason);
  }

  endAll(): void {
    for (const [tunnelId, tunnel] of this.tunnels) {
      tunnel.closedByPlatform = true; // the channel is gone: nobody to tell
      this.end(tunnelId, tunnel);
    }
    this.hostKeys.clear();
  }

  private open(body: Extract<SshBody, { op: 'sshOpen' }>, runAs: RunAsAgent | undefined): void {
    const key = this.hostKeys.get(body.sandboxId);
    const { runId, tunnelId } = body;
    if (!runAs || !key || this.tunnels.has(tunnelId)) {
      this.send({ kind: 'sshClosed', runId, tunnelId, reason: 'no such sandbox on this host' });
      return;
    }
    if ([...this.tunnels.values()].filter((t) => t.sandboxId === body.sandboxId).length >= MAX_SESSIONS_PER_SANDBOX) {
      this.send({ kind: 'sshClosed', runId, tunnelId, reason: `at most ${MAX_SESSIONS_PER_SANDBOX} SSH sessions per sandbox` });
      return;
    }
    let queued = 0;
    const socket = new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _encoding, done) => {
        queued += chunk.length;
        if (queued > MAX_QUEUED_BYTES) return done(new Error('the session backed up'));
        for (let at = 0; at < chunk.length; at += SSH_CHUNK_BYTES) this.send({ kind: 'sshData', runId, tunnelId, data: chunk.subarray(at, at + SSH_CHUNK_BYTES).toString('base64') });
        queued -= chunk.length;
        done();
      },
    });
    const tunnel: Tunnel = { runId, sandboxId: body.sandboxId, socket, closedByPlatform: false, processes: new Set(), channels: new Set() };
    this.tunnels.set(tunnelId, tunnel);
    socket.on('error', () => this.end(tunnelId, tunnel, 'the session failed'));
    socket.on('close', () => this.end(tunnelId, tunnel));
    const server = new Server({ hostKeys: [key.private] });
    server.on('connection', (client) => {
      client.on('error', () => this.end(tunnelId, tunnel, 'the session failed'));
      client.on('authentication', (context) => (context.method === 'none' ? context.accept() : context.reject(['none'])));
      client.on('ready', () => {
        client.on('session', (acceptSession) => {
          const session = acceptSession();
          let terminal: Terminal | undefined;
          session.on('pty', (accept, _reject, info) => {
            terminal = terminalOf(info);
            accept?.();
          });
          // The size is applied once, when the process starts: a resize later is acknowledged and not passed on.
          session.on('window-change', (accept) => accept?.());
          // The client's environment never enters the sandbox (OpenSSH's SendEnv): the sandbox's standing env is all it gets.
          session.on('env', (_accept, reject) => reject?.());
          session.on('subsystem', (_accept, reject) => reject());
          session.on('exec', (accept, _reject, info) => this.serveChannel(accept(), tunnel, runAs, sessionArgv(info.command, terminal), terminal));
          session.on('shell', (accept) => this.serveChannel(accept(), tunnel, runAs, sessionArgv(undefined, terminal), terminal));
        });
      });
    });
    server.injectSocket(socket as unknown as Socket);
    this.log(`host agent: SSH session opened into run ${runId}`);
  }

  /** A channel whose process failed in a way nobody awaits (the client left mid-way) ends the channel, never the agent. */
  private serveChannel(channel: ServerChannel, tunnel: Tunnel, runAs: RunAsAgent, argv: readonly string[], terminal: Terminal | undefined): void {
    this.run(channel, tunnel, runAs, argv, terminal).catch((error: unknown) => {
      this.log(`host agent: an SSH channel of run ${tunnel.runId} failed: ${(error as Error).message.slice(0, 200)}`);
      channel.destroy();
    });
  }

  /** Runs one process of the session: the channel's input is its stdin, its output (redacted) the channel's. */
  private async run(channel: ServerChannel, tunnel: Tunnel, runAs: RunAsAgent, argv: readonly string[], terminal: Terminal | undefined): Promise<void> {
    tunnel.channels.add(channel);
    channel.on('close', () => tunnel.channels.delete(channel));
    // Pulled as the process reads: ssh2 widens the client's window only as the channel is read, so a process that
    // reads slowly holds the client back. Not destroyed when the process stops reading: the exit status still goes out.
    const stdin: ProcessInput = { [Symbol.asyncIterator]: () => channel.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array> };
    const streamed = { stdout: false, stderr: false };
    let running: RunningCommand;
    try {
      running = await runAs({ argv, stdin, ...(terminal ? { env: { TERM: terminal.term } } : {}) }, (stream, text) => {
        streamed[stream] = true;
        (stream === 'stdout' ? channel : channel.stderr).write(text);
      });
    } catch (error) {
      channel.stderr.write(`disco-parrot: ${(error as Error).message.slice(0, 500)}\n`);
      channel.exit(1);
      channel.end();
      return;
    }
    tunnel.processes.add(running);
    channel.on('close', () => void running.stop().catch(() => undefined));
    const result: CommandResult = await running.exited.catch((error: unknown) => ({ exitCode: null, signal: null, stdout: '', stderr: (error as Error).message, truncated: false, timedOut: false, cancelled: false }));
    tunnel.processes.delete(running);
    // A host that does not stream (the Docker host) hands the whole output over at the exit, redacted the same way.
    if (!streamed.stdout && result.stdout) channel.write(result.stdout);
    if (!streamed.stderr && result.stderr) channel.stderr.write(result.stderr);
    if (result.exitCode !== null) channel.exit(result.exitCode);
    else channel.exit(result.signal?.replace(/^SIG/, '') ?? 'KILL');
    channel.end();
  }

  private end(tunnelId: string, tunnel: Tunnel, reason = 'the session ended'): void {
    if (this.tunnels.get(tunnelId) !== tunnel) return;
    this.tunnels.delete(tunnelId);
    for (const process of tunnel.processes) void process.stop().catch(() => undefined);
    if (!tunnel.closedByPlatform) this.send({ kind: 'sshClosed', runId: tunnel.runId, tunnelId, reason });
    tunnel.socket.destroy();
  }
}
