import { EventEmitter } from 'node:events';
import type { TokenCredential } from '@azure/core-auth';
import type { AdditionalPolicyConfig } from '@azure/core-client';
import { WebPubSubServiceClient } from '@azure/web-pubsub';
import type { HostMessageRefusal } from '../../../domain/sandboxHosts';
import { CLOSE_REVOKED, type ChannelSocket, HostConnection, type HostChannelAuthority, type HostDirectory } from './hostChannelServer';

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
  return match ? { workspaceId: match[1]!, hostId: match[2]! } : undefined;
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
}

export interface UpstreamAnswer {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** A Web PubSub connection seen as a channel socket: sends go out one at a time, in order, through the REST API. */
class WebPubSubConnectionSocket extends EventEmitter implements ChannelSocket {
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly plane: WebPubSubDataPlane, readonly connectionId: string, private readonly log: (line: string) => void) {
    super();
  }

  send(raw: string): void {
    if (this.closed) return;
    this.queue = this.queue.then(() => this.plane.sendToConnection(this.connectionId, raw)).catch((error: unknown) => {
      this.log(`host channel (Web PubSub): a send to connection ${this.connectionId} failed: ${(error as Error).message}`);
    });
  }

  close(code?: number, reason = ''): void {
    if (this.closed) return;
    this.closed = true;
    const said = code === CLOSE_REVOKED ? `${REVOKED_REASON_PREFIX}${reason}` : reason;
    this.queue = this.queue.then(() => this.plane.closeConnection(this.connectionId, said)).catch(() => undefined);
  }

  terminate(): void {
    this.closed = true;
  }
}

/**
 * The platform's end of the host channel in Azure: the agent's socket ends in Web PubSub. An agent negotiates a
 * client URL with its host credential; the platform sends frames to its connection with the REST data plane and
 * reads the agent's frames from Web PubSub's upstream event handler. Frames, sequence checks and refusals are the
 * local channel's (`HostConnection`, `ChannelSequence`): only the transport differs.
 */
export class WebPubSubHostChannel implements HostDirectory {
  private readonly byConnection = new Map<string, HostConnection>();
  private readonly byHost = new Map<string, HostConnection>();
  private readonly seen = new Map<string, string>();
  private readonly unknownConnections = new Set<string>();
  private readonly origin: string;

  constructor(
    private readonly options: {
      plane: WebPubSubDataPlane;
      authority: WebPubSubHostAuthority;
      /** The Web PubSub endpoint (`https://<name>.webpubsub.azure.com`): the only origin whose upstream calls are allowed. */
      endpoint: string;
      hub: string;
      verifyUpstream: UpstreamVerifier;
      log?: (line: string) => void;
      tap?: (direction: 'to-host' | 'from-host', raw: string) => void;
    },
  ) {
    this.origin = new URL(options.endpoint).host;
  }

  private get log(): (line: string) => void {
    return this.options.log ?? (() => undefined);
  }

  liveHosts(workspaceId: string): HostConnection[] {
    return [...this.byHost.values()].filter((c) => c.workspaceId === workspaceId && c.live);
  }

  allLiveHosts(): HostConnection[] {
    return [...this.byHost.values()].filter((c) => c.live);
  }

  lastSeen(hostId: string): string | undefined {
    return this.byHost.get(hostId)?.lastSeen ?? this.seen.get(hostId);
  }

  /** Cuts a host off at once: its local runs fail with the reason, and every connection of the host closes (whichever instance holds it). */
  cutOff(hostId: string, reason: string, workspaceId?: string): void {
    const connection = this.byHost.get(hostId);
    connection?.cutOff(reason, CLOSE_REVOKED);
    const owner = workspaceId ?? connection?.workspaceId;
    if (owner) void this.options.plane.closeUserConnections(hostUserId({ workspaceId: owner, hostId }), `${REVOKED_REASON_PREFIX}${reason}`).catch(() => undefined);
  }

  /** `POST /api/hosts/negotiate` with the host credential: a client URL for this host only. */
  async negotiate(credential: string): Promise<{ url: string }> {
    const host = await this.options.authority.authenticate(credential);
    return { url: await this.options.plane.clientUrl(hostUserId(host), CLIENT_TOKEN_MINUTES) };
  }

  /** Web PubSub's upstream event handler: the abuse-protection handshake, then the CloudEvents of the hub's connections. */
  async handleUpstream(request: UpstreamRequest): Promise<UpstreamAnswer> {
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
    const address = addressOfUser(request.header('ce-userid'));
    if (!address || !/^[A-Za-z0-9_.=+/-]{1,256}$/.test(connectionId)) return { status: 400 };
    switch (type) {
      case 'azure.webpubsub.sys.connect':
        // A client token minted before a revocation must not open a connection.
        return (await this.options.authority.isEnrolled(address)) ? { status: 204 } : { status: 401, body: 'the host is not enrolled' };
      case 'azure.webpubsub.sys.connected':
        this.connected(address, connectionId);
        return { status: 204 };
      case 'azure.webpubsub.sys.disconnected': {
        const connection = this.byConnection.get(connectionId);
        if (connection) this.forget(connectionId, connection, 'the host disconnected');
        return { status: 204 };
      }
      case `azure.webpubsub.user.${AGENT_FRAME_EVENT}`: {
        const connection = this.byConnection.get(connectionId);
        if (!connection || connection.hostId !== address.hostId || connection.workspaceId !== address.workspaceId) {
          // A frame on a connection this instance holds no session of (another host's, or one opened before this
          // instance started, e.g. after a scale to zero): never admitted, recorded once, and the connection is
          // closed so the agent reconnects and gets a session here.
          if (this.unknownConnections.size > 10_000) this.unknownConnections.clear();
          if (!this.unknownConnections.has(connectionId)) {
            this.unknownConnections.add(connectionId);
            this.refused(address, { reason: 'foreign-session', messageType: 'unknown' });
            if (!connection) void this.options.plane.closeConnection(connectionId, 'the platform holds no session for this connection; reconnect').catch(() => undefined);
          }
          return { status: 204 };
        }
        this.socketOf.get(connection)?.emit('message', request.body);
        return { status: 204 };
      }
      default:
        return { status: 400 };
    }
  }

  private readonly socketOf = new WeakMap<HostConnection, WebPubSubConnectionSocket>();

  private connected(address: { workspaceId: string; hostId: string }, connectionId: string): void {
    const previous = this.byHost.get(address.hostId);
    if (previous) {
      const previousId = [...this.byConnection].find(([, c]) => c === previous)?.[0];
      if (previousId) this.forget(previousId, previous, 'replaced by a new connection of the same host');
    }
    const socket = new WebPubSubConnectionSocket(this.options.plane, connectionId, this.log);
    const connection = new HostConnection(address.workspaceId, address.hostId, socket, (refusal) => this.refused(address, refusal), this.options.tap);
    this.socketOf.set(connection, socket);
    this.byConnection.set(connectionId, connection);
    this.byHost.set(address.hostId, connection);
  }

  private forget(connectionId: string, connection: HostConnection, reason: string): void {
    this.seen.set(connection.hostId, connection.lastSeen);
    connection.cutOff(reason);
    this.byConnection.delete(connectionId);
    if (this.byHost.get(connection.hostId) === connection) this.byHost.delete(connection.hostId);
  }

  private refused(address: { workspaceId: string; hostId: string }, refusal: { reason: HostMessageRefusal; messageType: string; runId?: string }): void {
    this.log(`host channel (Web PubSub): refused a ${refusal.messageType} frame from host ${address.hostId} (${refusal.reason})`);
    void this.options.authority.recordRefused(address, refusal).catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const [connectionId, connection] of [...this.byConnection]) this.forget(connectionId, connection, 'the platform is stopping');
  }
}
