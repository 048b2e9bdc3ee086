import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { SSH_ERROR } from '../../../domain/catalogue';
import { DomainError } from '../../../domain/errors';
import type { HostSessionAddress } from '../../../domain/ports/hostSessions';
import type { SshTunnelRecord, SshTunnelStore } from '../../../domain/ports/sshTunnels';
import { PLATFORM_PARTITION } from '../../../domain/streams';
import { type AgentBody, type PlatformBody, SSH_CHUNK_BYTES } from './protocol';
import { HostGoneError } from './hostChannelServer';
import type { ChannelRefusal, SharedHostSession } from './sharedHostSession';
import type { SshSession } from './sshRelay';
import type { UpstreamAnswer, UpstreamRequest, WebPubSubDataPlane } from './webPubSubHostChannel';

/** An IDE proxy's Web PubSub user is `ssh:<ticketId>`: never a host's (`<workspace>:<host>`), and minted only with a ticket. */
export const SSH_USER_PREFIX = 'ssh:';
/** The proxy presents its ticket in this header of its WebSocket upgrade; Web PubSub passes it to the app's `connect` handler. */
export const SSH_TICKET_HEADER = 'x-dp-ssh-ticket';
/** The user event the proxy's SSH bytes travel in (binary). */
export const SSH_DATA_EVENT = 'sshData';
/** The proxy's client token lives as long as its ticket. */
const CLIENT_TOKEN_MINUTES = 1;

export const sshUserId = (tunnelId: string): string => `${SSH_USER_PREFIX}${tunnelId}`;

/** The tunnel a Web PubSub user id names, when it is a proxy's. */
export function tunnelOfUser(userId: string | undefined): string | undefined {
  return /^ssh:([A-Za-z0-9_.-]{1,128})$/.exec(userId ?? '')?.[1];
}

/** What the relay needs from the use cases (domain/services/runSsh.ts), bound by the composition. */
export interface WebPubSubSshAuthority {
  redeem(ticket: string): Promise<SshSession & { ticketId: string }>;
  recordClosed(session: SshSession, reason: string): Promise<void>;
}

/** What the relay needs of the host channel (webPubSubHostChannel.ts). */
export interface SshRelayChannel {
  liveHosts(workspaceId: string): SharedHostSession[];
  refresh(): Promise<void>;
  /** The host's session, read from the shared store now, or why it ended. */
  openSession(address: HostSessionAddress): Promise<{ session: SharedHostSession } | { ended: string }>;
  recordRefused(address: HostSessionAddress, refusal: ChannelRefusal): void;
}

/** The part of Web PubSub's `connect` event the relay reads: the upgrade's headers. */
const connectEvent = z.object({ headers: z.record(z.string(), z.union([z.array(z.string()), z.string()])).optional() });

type TunnelBody = Extract<AgentBody, { kind: 'sshData' | 'sshClosed' }>;

/**
 * IDE SSH when the host channel ends in Web PubSub (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel). The
 * proxy connects to the same hub as the user `ssh:<ticketId>`, presenting its ticket on the upgrade; the `connect`
 * event redeems it (the same use case as the local relay, single use decided on the run's stream), and the tunnel's
 * record, in the table every instance shares, maps the proxy's connection to the host's session. Then, on any
 * instance: the proxy's binary messages go to the host as `sshData` frames in the session's order, the agent's
 * `sshData` go back with `sendToConnection`, and whichever end leaves closes the other, recorded once.
 */
export class WebPubSubSshRelay {
  private channel: SshRelayChannel | undefined;
  private readonly refusedConnections = new Set<string>();

  constructor(private readonly options: { authority: WebPubSubSshAuthority; tunnels: SshTunnelStore; plane: WebPubSubDataPlane; log?: (line: string) => void }) {}

  attach(channel: SshRelayChannel): void {
    this.channel = channel;
  }

  private get log(): (line: string) => void {
    return this.options.log ?? (() => undefined);
  }

  private get hosts(): SshRelayChannel {
    if (!this.channel) throw new Error('the SSH relay is not attached to a host channel');
    return this.channel;
  }

  /** The URL the proxy connects to for a ticket (minted with the ticket; good for a minute). */
  clientUrl(ticketId: string): Promise<string> {
    return this.options.plane.clientUrl(sshUserId(ticketId), CLIENT_TOKEN_MINUTES);
  }

  /** An upstream event of a proxy's connection (its user is `ssh:<tunnelId>`). */
  async upstream(type: string, tunnelId: string, connectionId: string, request: UpstreamRequest): Promise<UpstreamAnswer> {
    switch (type) {
      case 'azure.webpubsub.sys.connect':
        return this.connect(tunnelId, connectionId, request.body);
      case 'azure.webpubsub.sys.connected':
        await this.connected(tunnelId, connectionId);
        return { status: 204 };
      case `azure.webpubsub.user.${SSH_DATA_EVENT}`:
        if (!request.bytes || !(request.header('content-type') ?? '').startsWith('application/octet-stream')) return { status: 400 };
        await this.fromClient(tunnelId, connectionId, Buffer.from(request.bytes));
        return { status: 204 };
      case 'azure.webpubsub.sys.disconnected': {
        const record = await this.options.tunnels.get(tunnelId);
        // A second connection of the same user was refused at `connect`: its leaving ends nothing.
        if (record && record.connectionId === connectionId && !record.closed) await this.finish(record, 'the client disconnected', { tellHost: true });
        return { status: 204 };
      }
      default:
        return { status: 400 };
    }
  }

  /** The ticket is redeemed here, once; the run's sandbox is located and the tunnel's record kept before the connection opens. */
  private async connect(tunnelId: string, connectionId: string, body: string): Promise<UpstreamAnswer> {
    let session: SshSession & { ticketId: string };
    try {
      const ticket = ticketIn(body);
      if (!ticket) throw new DomainError(SSH_ERROR.TICKET_INVALID, `An SSH ticket is required (the ${SSH_TICKET_HEADER} header)`, 'forbidden');
      session = await this.options.authority.redeem(ticket);
    } catch (error) {
      const code = error instanceof DomainError ? error.code : SSH_ERROR.TICKET_INVALID;
      this.log(`ssh relay (Web PubSub): refused a tunnel (${code})`);
      return refusal(code);
    }
    const close = async (reason: string): Promise<UpstreamAnswer> => {
      await this.options.authority.recordClosed(session, reason).catch(() => undefined);
      this.log(`ssh relay (Web PubSub): session ${session.sessionId} into run ${session.runId} closed (${reason})`);
      return refusal(SSH_ERROR.TICKET_INVALID);
    };
    // The client token names one ticket: another ticket presented on it opens nothing (and is spent).
    if (session.ticketId !== tunnelId) return close('the ticket was presented on a connection minted for another ticket');
    try {
      const located = await this.locate(session.runId, session.workspaceId);
      if (!located) return await close('the run has no live sandbox on a host this platform reaches');
      await this.options.tunnels.open({
        tunnelId, connectionId, workspaceId: session.workspaceId, runId: session.runId, sessionId: session.sessionId, actor: session.actor,
        host: { workspaceId: located.host.workspaceId, hostId: located.host.hostId }, hostSession: located.host.session, sandboxId: located.sandboxId,
      });
    } catch (error) {
      return close(`the tunnel could not be opened: ${(error as Error).message}`);
    }
    this.log(`ssh relay (Web PubSub): session ${session.sessionId} into run ${session.runId} opened for ${session.actor}`);
    return { status: 204 };
  }

  /** The run's sandbox on a live host of its workspace's pool (never another workspace's own host). */
  private async locate(runId: string, workspaceId: string): Promise<{ host: SharedHostSession; sandboxId: string } | undefined> {
    await this.hosts.refresh();
    const pool = [...this.hosts.liveHosts(workspaceId), ...(workspaceId === PLATFORM_PARTITION ? [] : this.hosts.liveHosts(PLATFORM_PARTITION))];
    for (const host of pool) {
      const reply = await host.request({ op: 'locate', requestId: randomUUID(), runId }).catch(() => undefined);
      if (reply?.kind === 'located' && reply.runId === runId && reply.sandbox) return { host, sandboxId: reply.sandbox.sandboxId };
    }
    return undefined;
  }

  /**
   * The proxy's connection is open: the agent is asked to start its SSH server for the tunnel. The proxy sends
   * nothing before the server's first bytes reach it, so its data cannot overtake this frame.
   */
  private async connected(tunnelId: string, connectionId: string): Promise<void> {
    const record = await this.options.tunnels.get(tunnelId);
    if (!record || (record.connectionId === connectionId && record.closed)) return void (await this.options.plane.closeConnection(connectionId, 'the SSH session ended').catch(() => undefined));
    if (record.connectionId !== connectionId) return this.foreignConnection(record, connectionId, 'sshOpen');
    await this.toHost(record, { op: 'sshOpen', runId: record.runId, sandboxId: record.sandboxId, tunnelId });
  }

  private async fromClient(tunnelId: string, connectionId: string, bytes: Buffer): Promise<void> {
    const record = await this.options.tunnels.get(tunnelId);
    if (!record || (record.connectionId === connectionId && record.closed)) return void (await this.options.plane.closeConnection(connectionId, 'the SSH session ended').catch(() => undefined));
    if (record.connectionId !== connectionId) return this.foreignConnection(record, connectionId, SSH_DATA_EVENT);
    for (let at = 0; at < bytes.length; at += SSH_CHUNK_BYTES) {
      if (!(await this.toHost(record, { op: 'sshData', runId: record.runId, tunnelId, data: bytes.subarray(at, at + SSH_CHUNK_BYTES).toString('base64') }))) return;
    }
  }

  /** Sends a tunnel frame on the host session the tunnel was opened in; that session gone, the tunnel ends. */
  private async toHost(record: SshTunnelRecord, body: PlatformBody): Promise<boolean> {
    try {
      await (await this.sessionOf(record)).sendFrame(body);
      return true;
    } catch (error) {
      // The session's own reason (revoked, disconnected), as the close is recorded with it. A revocation ends this
      // instance's session before the store's head says so: then the reason is the one the session ended with.
      const now = await this.hosts.openSession(record.host).catch(() => undefined);
      const reason = now && 'ended' in now ? now.ended : error instanceof HostGoneError ? error.reason : 'the host disconnected';
      await this.finish(record, reason, { closeClient: true });
      return false;
    }
  }

  /** The host session the tunnel was opened in, while it is open. */
  private async sessionOf(record: SshTunnelRecord): Promise<SharedHostSession> {
    const open = await this.hosts.openSession(record.host);
    if ('ended' in open || open.session.session !== record.hostSession) throw new Error('the host session ended');
    return open.session;
  }

  /**
   * An event of a connection that is not the tunnel's (the client token is good for a minute and could open a
   * second connection; anything else posting as this user): nothing is relayed, the refusal is recorded on the
   * tunnel's host once per connection, and the connection is closed.
   */
  private async foreignConnection(record: SshTunnelRecord, connectionId: string, messageType: string): Promise<void> {
    if (this.refusedConnections.size > 10_000) this.refusedConnections.clear();
    if (!this.refusedConnections.has(connectionId)) {
      this.refusedConnections.add(connectionId);
      this.hosts.recordRefused(record.host, { reason: 'foreign-session', messageType, runId: record.runId });
    }
    await this.options.plane.closeConnection(connectionId, 'not the connection of this SSH session').catch(() => undefined);
  }

  /** The tunnel an agent's frame names, read before the frame is admitted. */
  tunnel(tunnelId: string): Promise<SshTunnelRecord | undefined> {
    return this.options.tunnels.get(tunnelId);
  }

  /** Does the tunnel belong to the host session that admitted the frame, and to the frame's run? */
  matches(record: SshTunnelRecord | undefined, head: HostSessionAddress & { session: string }, body: TunnelBody): boolean {
    return record !== undefined && record.host.workspaceId === head.workspaceId && record.host.hostId === head.hostId && record.hostSession === head.session && record.runId === body.runId;
  }

  /** An admitted agent frame for the tunnel: its bytes to the proxy's connection, or its end. */
  async forward(record: SshTunnelRecord, body: TunnelBody): Promise<void> {
    // The tunnel ended (the client left): what the agent sent meanwhile is dropped, not taken for a forgery.
    if (record.closed) return;
    if (body.kind === 'sshClosed') return this.finish(record, body.reason, { closeClient: true });
    // A proxy that left is cleaned up by its own disconnect: the agent's connection goes on regardless.
    await this.options.plane.sendBytesToConnection(record.connectionId, Buffer.from(body.data, 'base64')).catch(() => undefined);
  }

  /** A host's session ended (revoked, disconnected, replaced): the tunnels opened in it end with it, and their rows go. */
  async hostEnded(head: HostSessionAddress & { session: string }, reason: string): Promise<void> {
    const tunnels = (await this.options.tunnels.onHost(head)).filter((t) => t.hostSession === head.session);
    await Promise.all(tunnels.map(async (t) => {
      await this.finish(t, reason, { closeClient: true });
      await this.options.tunnels.remove(t.tunnelId);
    }));
  }

  /** Ends a tunnel once, whichever instance and end gets there first: the other end is told, the close recorded. */
  private async finish(record: SshTunnelRecord, reason: string, how: { tellHost?: boolean; closeClient?: boolean }): Promise<void> {
    if (!(await this.options.tunnels.close(record.tunnelId, reason.slice(0, 256)).catch(() => false))) return;
    if (how.tellHost) await this.sessionOf(record).then((session) => session.sendFrame({ op: 'sshClose', runId: record.runId, tunnelId: record.tunnelId })).catch(() => undefined);
    if (how.closeClient) await this.options.plane.closeConnection(record.connectionId, reason.slice(0, 120)).catch(() => undefined);
    const session: SshSession = { workspaceId: record.workspaceId, runId: record.runId, sessionId: record.sessionId, actor: record.actor };
    await this.options.authority.recordClosed(session, reason).catch((error: unknown) => this.log(`ssh relay (Web PubSub): recording the close of session ${record.sessionId} failed: ${(error as Error).message}`));
    this.log(`ssh relay (Web PubSub): session ${record.sessionId} into run ${record.runId} closed (${reason})`);
  }
}

function ticketIn(body: string): string | undefined {
  let parsed: z.infer<typeof connectEvent>;
  try {
    parsed = connectEvent.parse(JSON.parse(body));
  } catch {
    return undefined;
  }
  const entry = Object.entries(parsed.headers ?? {}).find(([name]) => name.toLowerCase() === SSH_TICKET_HEADER)?.[1];
  const value = Array.isArray(entry) ? entry[0] : entry;
  return value && value.length <= 256 ? value : undefined;
}

/** Web PubSub refuses the connection; the proxy sees the status (the code is for the platform's log and the body). */
function refusal(code: string): UpstreamAnswer {
  return { status: 401, headers: { 'content-type': 'application/problem+json' }, body: JSON.stringify({ status: 401, code, title: 'SSH session refused' }) };
}
