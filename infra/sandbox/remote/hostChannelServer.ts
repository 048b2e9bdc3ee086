import { randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { HOST_ERROR } from '../../../domain/catalogue';
import { DomainError } from '../../../domain/errors';
import type { HostMessageRefusal } from '../../../domain/sandboxHosts';
import { type AgentBody, type AgentFrame, CHANNEL_PATH, ChannelSequence, type PlatformBody, SSH_CHUNK_BYTES, SSH_PATH, agentFrame } from './protocol';

/** What the channel needs from the use cases (domain/services/sandboxHosts.ts), bound by the composition. */
export interface HostChannelAuthority {
  /** The host a credential belongs to; throws when it is not a current credential. Records the connection. */
  authenticate(credential: string): Promise<{ workspaceId: string; hostId: string; name: string }>;
  /** Replaces a current credential with a new one (the old one stops working); throws when it is not current. */
  rotate(credential: string): Promise<string>;
  /** Exchanges a one-time enrolment token for a host credential (throws when the token is not valid). */
  enrol(token: string): Promise<{ workspaceId: string; hostId: string; credential: string }>;
  recordRefused(address: { workspaceId: string; hostId: string }, refusal: { reason: HostMessageRefusal; messageType: string; runId?: string }): Promise<void>;
}

/** The host went away (disconnected, killed, revoked) while the platform waited on it. */
export class HostGoneError extends DomainError {
  constructor(readonly reason: string) {
    super('HOST.GONE', `the sandbox host is gone: ${reason}`, 'unavailable');
    this.name = 'HostGoneError';
  }
}

/** Close code for a revoked host (4000-4999 are the application's): the agent stops instead of reconnecting. */
export const CLOSE_REVOKED = 4401;

/** What the relay hears of one SSH session on a channel (sshRelay.ts). */
export interface SshTunnelListener {
  data(bytes: Buffer): void;
  closed(reason: string): void;
}

/** One IDE SSH session relayed over a host's channel: opaque bytes in bounded frames, bound to the run. */
export interface SshTunnel {
  send(bytes: Buffer): void;
  close(): void;
}

/** Serves the IDE's ssh-proxy WebSocket upgrades next to the channel (infra/sandbox/remote/sshRelay.ts). */
export interface SshUpgradeHandler {
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void;
}

type Waiter = { resolve(body: AgentBody): void; reject(error: Error): void; op?: string };
export type OutputListener = (stream: 'stdout' | 'stderr', text: string) => void;

/** What a connection needs of its socket: a `ws` WebSocket locally, a Web PubSub connection in Azure (webPubSubHostChannel.ts). */
export interface ChannelSocket {
  on(event: 'message', listener: (data: unknown) => void): unknown;
  send(raw: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

/** What the remote host needs of one agent's channel (a connection held here, or a session shared by instances). */
export interface ChannelConnection {
  readonly workspaceId: string;
  readonly hostId: string;
  readonly capabilities: { isolated: boolean; reason?: string } | undefined;
  readonly live: boolean;
  /** Sandboxes this instance placed on the host (least-loaded placement). */
  sandboxes: number;
  request(body: PlatformBody & { requestId: string }): Promise<AgentBody>;
  awaitExit(execId: string, runId: string, onOutput?: OutputListener): Promise<AgentBody>;
  /** Where the channel carries IDE SSH (the local channel; Web PubSub does not yet). */
  openSshTunnel?(runId: string, sandboxId: string, listener: SshTunnelListener): SshTunnel;
  /** Records an answer the platform refused for what it says (a `located` naming another sandbox), where the channel records refusals. */
  refuse?(refusal: { reason: HostMessageRefusal; messageType: string; runId?: string }): void;
}

/** Where the remote host finds a pool's live hosts: the local channel server, or the Web PubSub channel. */
export interface HostDirectory {
  liveHosts(workspaceId: string): ChannelConnection[];
  /** Every live connection this instance knows, whoever owns it (what the host's capabilities summarise). */
  allLiveHosts(): ChannelConnection[];
  /** Brings the view of live hosts up to date, where it is kept outside this process. */
  refresh?(): Promise<void>;
}

/** One authenticated agent's channel: requests by id, process exits by exec id, runs it was given. */
export class HostConnection implements ChannelConnection {
  readonly sequence: ChannelSequence;
  capabilities: { isolated: boolean; reason?: string } | undefined;
  lastSeen = new Date().toISOString();
  sandboxes = 0;
  private readonly waiting = new Map<string, Waiter>();
  private readonly exits = new Map<string, { runId: string; waiter: Waiter; onOutput?: OutputListener }>();
  private readonly runs = new Set<string>();
  private readonly tunnels = new Map<string, { runId: string; listener: SshTunnelListener }>();
  private goneReason: string | undefined;
  private readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    readonly workspaceId: string,
    readonly hostId: string,
    private readonly socket: ChannelSocket,
    private readonly onRefused: (refusal: { reason: HostMessageRefusal; messageType: string; runId?: string }) => void,
    private readonly tap: (direction: 'to-host' | 'from-host', raw: string) => void = () => undefined,
  ) {
    this.sequence = new ChannelSequence({ hostId, workspaceId, session: randomUUID() });
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    socket.on('message', (data) => {
      this.tap('from-host', String(data));
      this.receive(String(data));
    });
    this.send({ op: 'session' });
  }

  get live(): boolean {
    return this.goneReason === undefined && this.capabilities !== undefined;
  }

  whenReady(): Promise<void> {
    return this.ready;
  }

  refuse(refusal: { reason: HostMessageRefusal; messageType: string; runId?: string }): void {
    this.onRefused(refusal);
  }

  /** Sends one operation and waits for its answer (`failed` rejects with the agent's code). */
  request(body: PlatformBody & { requestId: string }): Promise<AgentBody> {
    if (this.goneReason !== undefined) return Promise.reject(new HostGoneError(this.goneReason));
    if ('runId' in body) this.runs.add(body.runId);
    return new Promise<AgentBody>((resolve, reject) => {
      this.waiting.set(body.requestId, { resolve, reject, op: body.op });
      this.send(body);
    });
  }

  private send(body: PlatformBody): void {
    const raw = JSON.stringify(this.sequence.stamp(body));
    this.tap('to-host', raw);
    this.socket.send(raw);
  }

  /** Resolves with the `exited` frame of an exec (registered before the exec is sent, so none is missed). */
  awaitExit(execId: string, runId: string, onOutput?: OutputListener): Promise<AgentBody> {
    if (this.goneReason !== undefined) return Promise.reject(new HostGoneError(this.goneReason));
    return new Promise((resolve, reject) => this.exits.set(execId, { runId, waiter: { resolve, reject }, ...(onOutput ? { onOutput } : {}) }));
  }

  /** Opens an SSH session into a run's sandbox on this host; the listener hears its bytes and its end. */
  openSshTunnel(runId: string, sandboxId: string, listener: SshTunnelListener): SshTunnel {
    const tunnelId = randomUUID();
    const closed: SshTunnel = { send: () => undefined, close: () => undefined };
    if (this.goneReason !== undefined || !this.runs.has(runId)) {
      listener.closed(this.goneReason ?? 'the run has no sandbox on this host');
      return closed;
    }
    this.tunnels.set(tunnelId, { runId, listener });
    this.send({ op: 'sshOpen', runId, sandboxId, tunnelId });
    return {
      send: (bytes) => {
        if (!this.tunnels.has(tunnelId)) return;
        for (let at = 0; at < bytes.length; at += SSH_CHUNK_BYTES) this.send({ op: 'sshData', runId, tunnelId, data: bytes.subarray(at, at + SSH_CHUNK_BYTES).toString('base64') });
      },
      close: () => {
        if (this.tunnels.delete(tunnelId) && this.goneReason === undefined) this.send({ op: 'sshClose', runId, tunnelId });
      },
    };
  }

  cutOff(reason: string, code = 1000): void {
    if (this.goneReason !== undefined) return;
    this.goneReason = reason;
    for (const { listener } of this.tunnels.values()) listener.closed(reason);
    this.tunnels.clear();
    const error = new HostGoneError(reason);
    for (const waiter of this.waiting.values()) waiter.reject(error);
    for (const { waiter } of this.exits.values()) waiter.reject(error);
    this.waiting.clear();
    this.exits.clear();
    this.socket.close(code, reason.slice(0, 120));
    // A closing handshake the agent never answers must not keep the socket (or its runs) alive.
    setTimeout(() => this.socket.terminate(), 2000).unref();
  }

  private receive(raw: string): void {
    const admitted = this.sequence.admit<AgentFrame>(agentFrame, raw);
    if (!admitted.ok) return this.onRefused(admitted);
    const body = admitted.frame.body;
    const runId = 'runId' in body ? body.runId : undefined;
    if (runId !== undefined && !this.runs.has(runId)) return this.onRefused({ reason: 'foreign-run', messageType: body.kind, runId });
    this.lastSeen = new Date().toISOString();
    if (body.kind === 'ready') {
      this.capabilities = body.capabilities;
      this.markReady();
      return;
    }
    if (body.kind === 'heartbeat') return;
    if (body.kind === 'output') {
      const running = this.exits.get(body.execId);
      if (!running || running.runId !== body.runId) return this.onRefused({ reason: 'foreign-run', messageType: body.kind, runId: body.runId });
      return running.onOutput?.(body.stream, body.text);
    }
    if (body.kind === 'sshData' || body.kind === 'sshClosed') {
      const tunnel = this.tunnels.get(body.tunnelId);
      if (!tunnel || tunnel.runId !== body.runId) return this.onRefused({ reason: 'foreign-run', messageType: body.kind, runId: body.runId });
      if (body.kind === 'sshData') return tunnel.listener.data(Buffer.from(body.data, 'base64'));
      this.tunnels.delete(body.tunnelId);
      return tunnel.listener.closed(body.reason);
    }
    if (body.kind === 'exited') {
      const exit = this.exits.get(body.execId);
      if (!exit || exit.runId !== body.runId) return this.onRefused({ reason: 'foreign-run', messageType: body.kind, runId: body.runId });
      this.exits.delete(body.execId);
      return exit.waiter.resolve(body);
    }
    const waiter = this.waiting.get(body.requestId);
    if (!waiter) return this.onRefused({ reason: 'unexpected', messageType: body.kind, ...(runId ? { runId } : {}) });
    this.waiting.delete(body.requestId);
    // The agent refused a frame naming a run it does not hold there: a foreign message, recorded like the platform's refusals.
    if (body.kind === 'failed' && body.code === HOST_ERROR.FOREIGN_RUN) this.onRefused({ reason: 'foreign-run', messageType: waiter.op ?? 'unknown', ...(body.runId ? { runId: body.runId } : {}) });
    if (body.kind === 'failed') waiter.reject(new DomainError(body.code, body.message, body.errorKind ?? 'unavailable'));
    else waiter.resolve(body);
  }
}

/**
 * The platform's end of the host channel as the local host serves it: HTTPS with the enrolment exchange
 * (`POST /api/hosts/enrol`) and the WebSocket (`/api/hosts/channel`), each agent authenticated by its host
 * credential on the upgrade. In Azure the socket ends in Web PubSub instead (docs/sandbox-hosts.md).
 */
export class HostChannelServer implements HostDirectory {
  private readonly connections = new Map<string, HostConnection>();
  private readonly seen = new Map<string, string>();
  private ssh: SshUpgradeHandler | undefined;

  private constructor(
    private readonly server: Server,
    private readonly authority: HostChannelAuthority,
    private readonly log: (line: string) => void,
    private readonly tap?: (direction: 'to-host' | 'from-host', raw: string) => void,
  ) {}

  static async start(options: {
    tls: { key: string; cert: string };
    authority: HostChannelAuthority;
    port?: number;
    host?: string;
    log?: (line: string) => void;
    /** Sees every frame either way (tests capture the channel with it). */
    tap?: (direction: 'to-host' | 'from-host', raw: string) => void;
  }): Promise<HostChannelServer> {
    const server = createServer({ key: options.tls.key, cert: options.tls.cert });
    const channel = new HostChannelServer(server, options.authority, options.log ?? (() => undefined), options.tap);
    const sockets = new WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
    server.on('request', (req, res) => void channel.serveEnrolment(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => void channel.upgrade(sockets, req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    return channel;
  }

  get url(): string {
    const { port } = this.server.address() as AddressInfo;
    return `https://127.0.0.1:${port}`;
  }

  /** Live, ready connections of a pool's owner (a workspace, or the platform partition for the managed pool). */
  liveHosts(workspaceId: string): HostConnection[] {
    return [...this.connections.values()].filter((c) => c.workspaceId === workspaceId && c.live);
  }

  allLiveHosts(): HostConnection[] {
    return [...this.connections.values()].filter((c) => c.live);
  }

  lastSeen(hostId: string): string | undefined {
    return this.connections.get(hostId)?.lastSeen ?? this.seen.get(hostId);
  }

  /** Serves IDE ssh-proxy tunnels (`SSH_PATH`) on this endpoint too. */
  serveSsh(handler: SshUpgradeHandler): void {
    this.ssh = handler;
  }

  /** Cuts a host off at once: its channel closes and every run waiting on it fails with the reason. */
  cutOff(hostId: string, reason: string): void {
    this.connections.get(hostId)?.cutOff(reason, CLOSE_REVOKED);
  }

  async close(): Promise<void> {
    for (const connection of this.connections.values()) connection.cutOff('the platform is stopping', 1001);
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serveEnrolment(req: IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const answer = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': status < 300 ? 'application/json' : 'application/problem+json' }).end(JSON.stringify(body));
    };
    if (req.method === 'POST' && req.url === '/api/hosts/rotate') {
      const header = req.headers.authorization ?? '';
      try {
        if (!header.startsWith('Bearer ')) throw new Error('no credential');
        return answer(200, { credential: await this.authority.rotate(header.slice('Bearer '.length)) });
      } catch (error) {
        return answer(403, { status: 403, code: error instanceof DomainError ? error.code : 'HOST.CREDENTIAL_INVALID', title: 'Rotation refused' });
      }
    }
    if (req.method !== 'POST' || req.url !== '/api/hosts/enrol') return answer(404, { status: 404, code: 'HOST.NOT_FOUND', title: 'Not found' });
    let raw = '';
    for await (const chunk of req) {
      raw += String(chunk);
      if (raw.length > 4096) return answer(413, { status: 413, code: 'HTTP.TOO_LARGE', title: 'Too large' });
    }
    try {
      const token = (JSON.parse(raw) as { token?: unknown }).token;
      if (typeof token !== 'string') return answer(400, { status: 400, code: 'HTTP.BAD_REQUEST', title: 'token required' });
      answer(200, await this.authority.enrol(token));
    } catch (error) {
      const code = error instanceof DomainError ? error.code : 'HOST.ENROLMENT_INVALID';
      answer(403, { status: 403, code, title: 'Enrolment refused' });
    }
  }

  private async upgrade(sockets: WebSocketServer, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const refuse = (): void => {
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    };
    const pathname = new URL(req.url ?? '/', 'https://x').pathname;
    if (pathname === SSH_PATH && this.ssh) return this.ssh.upgrade(req, socket, head);
    if (pathname !== CHANNEL_PATH) return refuse();
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) return refuse();
    let host: { workspaceId: string; hostId: string };
    try {
      host = await this.authority.authenticate(header.slice('Bearer '.length));
    } catch {
      this.log('host channel: a connection with an invalid credential was refused');
      return refuse();
    }
    sockets.handleUpgrade(req, socket, head, (ws) => {
      this.connections.get(host.hostId)?.cutOff('replaced by a new connection of the same host');
      const connection = new HostConnection(host.workspaceId, host.hostId, ws, (refusal) => {
        this.log(`host channel: refused a ${refusal.messageType} frame from host ${host.hostId} (${refusal.reason})`);
        void this.authority.recordRefused(host, refusal).catch(() => undefined);
      }, this.tap);
      this.connections.set(host.hostId, connection);
      ws.on('close', () => {
        this.seen.set(host.hostId, connection.lastSeen);
        connection.cutOff('the host disconnected');
        if (this.connections.get(host.hostId) === connection) this.connections.delete(host.hostId);
      });
    });
  }
}
