import { randomUUID } from 'node:crypto';
import type { TokenCredential } from '@azure/core-auth';
import type { AdditionalPolicyConfig } from '@azure/core-client';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import { HOST_ERROR } from '../../../domain/catalogue';
import type { DepositedFrame, HostSessionAddress, HostSessionChange, HostSessionHead, HostSessionStore } from '../../../domain/ports/hostSessions';
import type { SshTunnelRecord } from '../../../domain/ports/sshTunnels';
import { DepositTooLargeError } from '../../tables/tableHostSessions';
import type { HostChannelAuthority, HostDirectory } from './hostChannelServer';
import { type AgentBody, type AgentFrame, ChannelSequence, agentFrame } from './protocol';
import { type ChannelRefusal, SHARED_SESSION_TIMING, type SharedSessionContext, SharedHostSession, waitKeyOf } from './sharedHostSession';
import { SSH_USER_PREFIX, type SshRelayChannel, type WebPubSubSshRelay, tunnelOfUser } from './webPubSubSshRelay';

/** The subprotocol an agent speaks to Web PubSub's client endpoint (server messages and user events, JSON). */
export const WEB_PUBSUB_SUBPROTOCOL = 'json.webpubsub.azure.v1';
/** The user event an agent's frames travel in (`azure.webpubsub.user.message` upstream). */
export const AGENT_FRAME_EVENT = 'message';
/** The reason a revoked host's connection is closed with; the agent stops instead of reconnecting when it sees it. */
export const REVOKED_REASON_PREFIX = 'revoked: ';
/** A client access token lives this long; a connection outlives it, a reconnect negotiates again. */
const CLIENT_TOKEN_MINUTES = 10;

/** What the channel needs of Web PubSub's data plane (`@azure/web-pubsub` in Azure; a wire-format fake in tests). */
export interface WebPubSubDataPlane {
  /** A client URL (`wss://…/client/hubs/{hub}?access_token=…`) naming the user. */
  clientUrl(userId: string, minutes: number): Promise<string>;
  sendToConnection(connectionId: string, raw: string): Promise<void>;
  /** Binary (`application/octet-stream`): an IDE proxy's SSH bytes. */
  sendBytesToConnection(connectionId: string, bytes: Buffer): Promise<void>;
  closeConnection(connectionId: string, reason: string): Promise<void>;
  closeUserConnections(userId: string, reason: string): Promise<void>;
}

/** The data plane through `@azure/web-pubsub` with a token credential (DefaultAzureCredential in Azure): no keys. */
export function azureWebPubSubDataPlane(options: { endpoint: string; hub: string; credential: TokenCredential; additionalPolicies?: AdditionalPolicyConfig[] }): WebPubSubDataPlane {
  const client = new WebPubSubServiceClient(options.endpoint, options.credential, options.hub, { additionalPolicies: options.additionalPolicies ?? [] });
  return {
    clientUrl: async (userId, minutes) => (await client.getClientAccessToken({ userId, expirationTimeInMinutes: minutes })).url,
    // text/plain: the agent receives the frame's exact bytes, which its sequence check admits or refuses.
    sendToConnection: async (connectionId, raw) => void (await client.sendToConnection(connectionId, raw, { contentType: 'text/plain' })),
    sendBytesToConnection: async (connectionId, bytes) => void (await client.sendToConnection(connectionId, bytes)),
    closeConnection: async (connectionId, reason) => void (await client.closeConnection(connectionId, { reason })),
    closeUserConnections: async (userId, reason) => void (await client.closeUserConnections(userId, { reason })),
  };
}

/** A host's user id in the hub: its workspace (or the managed pool's partition) and its id. */
export function hostUserId(address: { workspaceId: string; hostId: string }): string {
  return `${address.workspaceId}:${address.hostId}`;
}

function addressOfUser(userId: string | undefined): { workspaceId: string; hostId: string } | undefined {
  const match = /^([A-Za-z0-9_.-]{1,128}):([A-Za-z0-9_.-]{1,128})$/.exec(userId ?? '');
  // `ssh:<ticket>` is an IDE proxy's user (webPubSubSshRelay.ts), never a host's.
  return match && `${match[1]}:` !== SSH_USER_PREFIX ? { workspaceId: match[1]!, hostId: match[2]! } : undefined;
}

/** The channel's use cases, plus the one check the connect event needs (a token minted before a revocation must not connect). */
export interface WebPubSubHostAuthority extends HostChannelAuthority {
  isEnrolled(address: { workspaceId: string; hostId: string }): Promise<boolean>;
  /** Enrols a managed-pool machine by its managed identity's Entra ID token (absent: no pool identities are configured). */
  enrolManaged?(identityToken: string): Promise<{ workspaceId: string; hostId: string; credential: string }>;
}

/** Is this upstream request from our Web PubSub? (In Azure: its managed identity's Entra ID token, see upstreamAuth.ts.) */
export type UpstreamVerifier = (authorization: string | undefined) => Promise<boolean>;

export interface UpstreamRequest {
  readonly method: string;
  header(name: string): string | undefined;
  readonly body: string;
  /** The body's bytes (a binary user event: an IDE proxy's SSH bytes). */
  readonly bytes?: Uint8Array;
}

export interface UpstreamAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/**
 * The platform's end of the host channel in Azure: the agent's socket ends in Web PubSub. An agent negotiates a
 * client URL with its host credential; the platform sends frames to its connection with the REST data plane and
 * reads the agent's frames from Web PubSub's upstream event handler. Frames, sequence checks and refusals are the
 * local channel's (`ChannelSequence`); the session is kept in a store every app instance shares, so any instance
 * admits an agent's frame, sends to its connection in order, and serves the commands it started itself.
 */
export class WebPubSubHostChannel implements HostDirectory, SshRelayChannel {
  /** This instance's view of each host's current session, by `<workspace>:<host>`. */
  private readonly sessions = new Map<string, SharedHostSession>();
  private readonly unknownConnections = new Set<string>();
  private readonly origin: string;
  private readonly context: SharedSessionContext;
  private refresher: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private closed = false;
  private ssh: WebPubSubSshRelay | undefined;

  constructor(
    private readonly options: {
      plane: WebPubSubDataPlane;
      authority: WebPubSubHostAuthority;
      /** The sessions every instance shares (Table storage). */
      store: HostSessionStore;
      /** The Web PubSub endpoint (`https://<name>.webpubsub.azure.com`): the only origin whose upstream calls are allowed. */
      endpoint: string;
      hub: string;
      verifyUpstream: UpstreamVerifier;
      /** How often the view of live hosts is read again in the background (default 2 s; a placement reads it first). */
      refreshMs?: number;
      log?: (line: string) => void;
      tap?: (direction: 'to-host' | 'from-host', raw: string) => void;
    },
  ) {
    this.origin = new URL(options.endpoint).host;
    this.context = {
      store: options.store, instance: randomUUID(),
      send: (connectionId, raw) => options.plane.sendToConnection(connectionId, raw),
      closeSession: (head, reason, how) => this.closeSession(head, reason, how),
      tap: (direction, raw) => options.tap?.(direction, raw),
      log: (line) => this.log(line),
      refused: (address, refusal) => this.refused(address, refusal),
    };
  }

  /** The background reading starts with the first use (opening the channel touches no storage). */
  private keepRefreshing(): void {
    if (this.refresher || this.closed) return;
    this.refresher = setInterval(() => void this.refresh().catch((error: unknown) => this.log(`host channel (Web PubSub): reading the sessions failed: ${(error as Error).message}`)), this.options.refreshMs ?? 2000);
    this.refresher.unref();
  }

  private get log(): (line: string) => void {
    return this.options.log ?? (() => undefined);
  }

  liveHosts(workspaceId: string): SharedHostSession[] {
    return [...this.sessions.values()].filter((c) => c.workspaceId === workspaceId && c.live);
  }

  allLiveHosts(): SharedHostSession[] {
    return [...this.sessions.values()].filter((c) => c.live);
  }

  lastSeen(hostId: string): string | undefined {
    return [...this.sessions.values()].find((c) => c.hostId === hostId)?.lastSeen;
  }

  /** Relays IDE SSH through the same hub (proxies connect as `ssh:<ticketId>` users). */
  serveSsh(relay: WebPubSubSshRelay): void {
    this.ssh = relay;
    relay.attach(this);
  }

  /** A host's session as it is in the store now (an SSH tunnel's frames go to the session they were opened in), or why it ended. */
  async openSession(address: HostSessionAddress): Promise<{ session: SharedHostSession } | { ended: string }> {
    const head = await this.options.store.head(address);
    if (!head) return { ended: 'the host disconnected' };
    return head.closed ? { ended: head.closed } : { session: this.sessionOf(head) };
  }

  recordRefused(address: HostSessionAddress, refusal: ChannelRefusal): void {
    this.refused(address, refusal);
  }

  /** Reads every host's session from the store (the hosts other instances opened, ended or heard from). */
  refresh(): Promise<void> {
    this.keepRefreshing();
    this.refreshing ??= this.options.store.heads().then((heads) => {
      const current = new Set<string>();
      for (const head of heads) {
        current.add(sessionKey(head));
        this.sessionOf(head);
      }
      for (const [key, session] of this.sessions) if (!current.has(key)) session.end('the session ended');
    }).finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** Cuts a host off at once on every instance: its session ends with the reason, and every connection of the host closes. */
  cutOff(hostId: string, reason: string, workspaceId?: string): void {
    const local = [...this.sessions.values()].find((c) => c.hostId === hostId && (workspaceId === undefined || c.workspaceId === workspaceId));
    local?.end(reason);
    const owner = workspaceId ?? local?.workspaceId;
    if (!owner) return;
    const address = { workspaceId: owner, hostId };
    void (async () => {
      // The head first: an instance's waiter reads the reason there; then Web PubSub closes the connections.
      const head = await this.options.store.head(address);
      if (head) await this.closeSession(head, reason, { closeConnection: false });
      await this.options.plane.closeUserConnections(hostUserId(address), `${REVOKED_REASON_PREFIX}${reason}`);
    })().catch((error: unknown) => this.log(`host channel (Web PubSub): cutting host ${hostId} off failed: ${(error as Error).message}`));
  }

  /** `POST /api/hosts/negotiate` with the host credential: a client URL for this host only. */
  async negotiate(credential: string): Promise<{ url: string }> {
    const host = await this.options.authority.authenticate(credential);
    return { url: await this.options.plane.clientUrl(hostUserId(host), CLIENT_TOKEN_MINUTES) };
  }

  /** Web PubSub's upstream event handler: the abuse-protection handshake, then the CloudEvents of the hub's connections. */
  async handleUpstream(request: UpstreamRequest): Promise<UpstreamAnswer> {
    this.keepRefreshing();
    const origin = request.header('webhook-request-origin');
    if (request.method === 'OPTIONS') {
      // Only our own Web PubSub may post here: the handshake names it, and it is the only origin we allow.
      if (origin !== this.origin) return { status: 400 };
      return { status: 200, headers: { 'webhook-allowed-origin': this.origin } };
    }
    if (request.method !== 'POST') return { status: 405 };
    if (!(await this.options.verifyUpstream(request.header('authorization')))) return { status: 401 };
    if (request.header('ce-hub') !== this.options.hub) return { status: 400 };
    const type = request.header('ce-type') ?? '';
    const connectionId = request.header('ce-connectionid') ?? '';
    if (!/^[A-Za-z0-9_.=+/-]{1,256}$/.test(connectionId)) return { status: 400 };
    const tunnelId = tunnelOfUser(request.header('ce-userid'));
    if (tunnelId !== undefined) return this.ssh ? this.ssh.upstream(type, tunnelId, connectionId, request) : { status: 401, body: 'no SSH relay is served here' };
    const address = addressOfUser(request.header('ce-userid'));
    if (!address) return { status: 400 };
    switch (type) {
      case 'azure.webpubsub.sys.connect':
        // A client token minted before a revocation must not open a connection.
        return (await this.options.authority.isEnrolled(address)) ? { status: 204 } : { status: 401, body: 'the host is not enrolled' };
      case 'azure.webpubsub.sys.connected':
        // Asked again: a revocation may have landed between this connection's `connect` and now.
        if (!(await this.options.authority.isEnrolled(address))) {
          await this.options.plane.closeConnection(connectionId, 'the host is not enrolled').catch(() => undefined);
          return { status: 204 };
        }
        await this.connected(address, connectionId);
        return { status: 204 };
      case 'azure.webpubsub.sys.disconnected': {
        const head = await this.options.store.head(address);
        if (head && head.connectionId === connectionId) await this.closeSession(head, 'the host disconnected', { closeConnection: false });
        return { status: 204 };
      }
      case `azure.webpubsub.user.${AGENT_FRAME_EVENT}`:
        this.options.tap?.('from-host', request.body);
        try {
          await this.admit(address, connectionId, request.body);
        } catch (error) {
          // A frame neither admitted nor refused leaves a gap no later frame can pass: the agent reconnects instead.
          this.log(`host channel (Web PubSub): a frame of host ${address.hostId} could not be admitted: ${(error as Error).message}`);
          await this.options.plane.closeConnection(connectionId, 'the platform could not admit a frame; reconnect').catch(() => undefined);
          return { status: 500 };
        }
        return { status: 204 };
      default:
        return { status: 400 };
    }
  }

  /** A new connection's session: the head opened with this instance's claim on frame 1, the session frame. */
  private async connected(address: HostSessionAddress, connectionId: string): Promise<void> {
    const now = Date.now();
    const { head, previous } = await this.options.store.open({
      ...address, session: randomUUID(), connectionId, nextInbound: 1, nextOutbound: 2, lastSeen: new Date(now).toISOString(), closed: '',
      sender: this.context.instance, senderUntil: now + SHARED_SESSION_TIMING.sendClaimMs,
    });
    if (previous && previous.connectionId !== connectionId) {
      this.sessions.get(sessionKey(previous))?.end('replaced by a new connection of the same host');
      void this.ssh?.hostEnded(previous, 'replaced by a new connection of the same host').catch(() => undefined);
      if (!previous.closed) void this.options.plane.closeConnection(previous.connectionId, 'replaced by a new connection of the same host').catch(() => undefined);
      void this.options.store.clear(previous).catch(() => undefined);
    }
    this.log(`host channel (Web PubSub): session ${head.session} opened for host ${address.hostId} (connection ${connectionId})`);
    await this.sessionOf(head).open(head).catch(() => undefined);
  }

  /**
   * An agent's frame, on whichever instance Web PubSub posted it to: admitted only with exactly the head's next
   * sequence number, the head's change written only against the version read (a frame racing on another instance
   * makes this one read again, and a copy of an admitted frame is then refused as replayed). An answer goes to the
   * instance that waits on it: at once when that is this one, otherwise deposited with the head's change.
   */
  private async admit(address: HostSessionAddress, connectionId: string, raw: string): Promise<void> {
    const { store } = this.options;
    // What the frame claims, read ahead so the registration it answers is read alongside the head (checked below).
    const claimed = agentFrame.safeParse(parsedOrUndefined(raw));
    const claimedKey = claimed.success ? waitKeyOf(claimed.data.body) : undefined;
    // An IDE SSH tunnel's frame: the relay's record (shared, never changed) says where it goes, not a waiter.
    const claimedTunnel = claimed.success && (claimed.data.body.kind === 'sshData' || claimed.data.body.kind === 'sshClosed') ? claimed.data.body.tunnelId : undefined;
    const tunnelRecord = claimedTunnel !== undefined && this.ssh ? this.ssh.tunnel(claimedTunnel) : Promise.resolve(undefined);
    tunnelRecord.catch(() => undefined);
    for (let attempt = 0; attempt < 50; attempt++) {
      const known = this.sessions.get(sessionKey(address));
      const heldHere = claimedKey && claimed.success && known?.session === claimed.data.session ? known.waiting(claimedKey) : undefined;
      const readAhead = claimedKey !== undefined && claimed.success && !heldHere && claimedTunnel === undefined;
      const [head, registered] = await Promise.all([
        store.head(address),
        readAhead ? store.expectation({ ...address, session: claimed.data.session }, claimedKey) : undefined,
      ]);
      if (!head || head.connectionId !== connectionId || head.closed) return this.foreignConnection(address, connectionId, head);
      const session = this.sessionOf(head);
      const admitted = new ChannelSequence({ hostId: head.hostId, workspaceId: head.workspaceId, session: head.session }, { received: head.nextInbound - 1 }).admit<AgentFrame>(agentFrame, raw);
      if (!admitted.ok) return this.refused(address, admitted);
      const { frame } = admitted;
      const body = frame.body;
      const runId = 'runId' in body ? body.runId : undefined;
      const change: HostSessionChange = { nextInbound: frame.seq + 1, lastSeen: new Date().toISOString(), ...(body.kind === 'ready' ? { capabilities: body.capabilities } : {}) };
      const key = waitKeyOf(body);
      let refusal: ChannelRefusal | undefined;
      let deposit: DepositedFrame | undefined;
      let relayed: { record: SshTunnelRecord; body: Extract<AgentBody, { kind: 'sshData' | 'sshClosed' }> } | undefined;
      const here = key ? session.waiting(key) : undefined;
      if (body.kind === 'sshData' || body.kind === 'sshClosed') {
        const record = await tunnelRecord;
        if (record && this.ssh?.matches(record, head, body)) relayed = { record, body };
        else refusal = { reason: 'foreign-run', messageType: body.kind, runId: body.runId };
      } else if (key) {
        // Admitted, so the frame's session is the head's and the key is the one read ahead.
        const expected = here ?? (readAhead ? registered : await store.expectation(head, key));
        const byRun = runId !== undefined || body.kind === 'output' || body.kind === 'exited';
        if (!expected || (runId !== undefined && expected.runId !== undefined && expected.runId !== runId))
          refusal = { reason: byRun ? 'foreign-run' : 'unexpected', messageType: body.kind, ...(runId ? { runId } : {}) };
        else if (!here) deposit = { key, seq: frame.seq, body: JSON.stringify(body) };
      }
      let updated: HostSessionHead | undefined;
      try {
        updated = await store.update(head, change, deposit);
      } catch (error) {
        if (!(error instanceof DepositTooLargeError) || !deposit) throw error;
        // Kept whole or not at all: the waiter learns its answer was too large rather than waiting for it.
        const failed: AgentBody = { kind: 'failed', requestId: 'too-large', code: HOST_ERROR.FRAME_TOO_LARGE, message: error.message };
        updated = await store.update(head, change, { ...deposit, body: JSON.stringify(failed) });
      }
      if (!updated) {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * Math.min(attempt + 1, 10)));
        continue;
      }
      session.observe(updated);
      if (refusal) return this.refused(address, refusal);
      // Awaited: Web PubSub posts the agent's next frame only after this answer, so the proxy gets the bytes in order.
      if (relayed) return this.ssh?.forward(relayed.record, relayed.body);
      if (key && here) session.deliver(key, body);
      return;
    }
    throw new Error('the session stayed contended past 50 attempts');
  }

  /**
   * A frame on a connection that is not its host's open session (another host's, a replaced one, or one whose
   * session ended): never admitted, recorded once here, and the connection closed so the agent reconnects.
   */
  private foreignConnection(address: HostSessionAddress, connectionId: string, head: HostSessionHead | undefined): void {
    if (this.unknownConnections.size > 10_000) this.unknownConnections.clear();
    if (this.unknownConnections.has(connectionId)) return;
    this.unknownConnections.add(connectionId);
    // The host's own session that just ended (revoked, disconnected): its frames still in flight are dropped, not recorded.
    const ended = head?.connectionId === connectionId && head.closed !== '';
    if (!ended) this.refused(address, { reason: 'foreign-session', messageType: 'unknown' });
    const reason = ended ? head.closed : 'the platform holds no session for this connection; reconnect';
    void this.options.plane.closeConnection(connectionId, reason).catch(() => undefined);
  }

  /** This instance's view of the head's session (a new one when the host's session changed). */
  private sessionOf(head: HostSessionHead): SharedHostSession {
    const key = sessionKey(head);
    const known = this.sessions.get(key);
    if (known && known.session === head.session) {
      known.observe(head);
      return known;
    }
    known?.end('replaced by a new connection of the same host');
    const session = new SharedHostSession(this.context, head);
    this.sessions.set(key, session);
    return session;
  }

  /** Ends a session for every instance: marked closed on the head (the first reason stays), its rows removed. */
  private async closeSession(head: HostSessionHead, reason: string, how: { closeConnection: boolean }): Promise<void> {
    const { store } = this.options;
    let current: HostSessionHead | undefined = head;
    while (current && current.session === head.session && !current.closed) {
      const closed = await store.update(current, { closed: reason, sender: '', senderUntil: 0 });
      current = closed ?? (await store.head(head));
    }
    this.sessions.get(sessionKey(head))?.observe(current);
    const ended = current?.session === head.session ? current.closed : reason;
    await this.ssh?.hostEnded(head, ended).catch((error: unknown) => this.log(`host channel (Web PubSub): ending the SSH tunnels of host ${head.hostId} failed: ${(error as Error).message}`));
    this.log(`host channel (Web PubSub): session ${head.session} of host ${head.hostId} ended (${current?.session === head.session ? current.closed : reason})`);
    if (how.closeConnection) await this.options.plane.closeConnection(head.connectionId, reason).catch(() => undefined);
    await store.clear(head);
  }

  private refused(address: HostSessionAddress, refusal: ChannelRefusal): void {
    this.log(`host channel (Web PubSub): refused a ${refusal.messageType} frame from host ${address.hostId} (${refusal.reason})`);
    void (async () => {
      // Instances refusing at once contend on the host's stream: the record is retried past the use case's own retries.
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.options.authority.recordRefused(address, refusal);
        } catch (error) {
          if (attempt >= 8) return this.log(`host channel (Web PubSub): recording a refusal of host ${address.hostId} failed: ${(error as Error).message}`);
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * attempt));
        }
      }
    })();
  }

  /** Stops this instance's part: its waiters fail; the sessions stay open for the other instances. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.refresher);
    for (const session of this.sessions.values()) session.end('the platform is stopping');
    await this.refreshing?.catch(() => undefined);
  }
}

function parsedOrUndefined(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return undefined;
  }
}

function sessionKey(address: HostSessionAddress): string {
  return `${address.workspaceId}:${address.hostId}`;
}
