import { randomBytes, randomUUID } from 'node:crypto';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type Server, createServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { SignJWT, jwtVerify } from 'jose';
import { WebSocket, WebSocketServer } from 'ws';

const SUBPROTOCOL = 'json.webpubsub.azure.v1';

interface FakeConnection {
  readonly connectionId: string;
  readonly userId: string;
  readonly socket: WebSocket;
  /** Upstream calls of one connection go out one at a time, in order, as the service delivers them. */
  upstream: Promise<void>;
}

/**
 * A local stand-in for Azure Web PubSub speaking its wire formats (nothing here is Azure's code):
 * - the client endpoint `wss://…/client/hubs/{hub}?access_token=…` with the `json.webpubsub.azure.v1`
 *   subprotocol (server messages `{type:"message",from:"server",dataType,data}`, system messages
 *   `connected`/`disconnected`, client user events `{type:"event",event,dataType,data}`);
 * - the REST data plane the SDK calls (`POST /api/hubs/{hub}/:generateToken`, `…/connections/{id}/:send`,
 *   `…/users/{user}/:send`, `DELETE …/connections/{id}`, `…/users/{user}/:closeConnections`), each needing a bearer
 *   token the test accepts (the app's managed identity in Azure);
 * - upstream CloudEvents in binary mode (`ce-*` headers) to one event handler URL, after the abuse-protection
 *   `OPTIONS` handshake, each carrying a bearer token (managed-identity upstream auth in Azure).
 */
export class FakeWebPubSub {
  readonly connections = new Map<string, FakeConnection>();
  /** What crossed the client sockets, either way (tests look for values in it). */
  readonly wire: { direction: 'to-client' | 'from-client'; raw: string }[] = [];
  readonly upstreamFailures: string[] = [];
  /** Every data-plane call the app made, as `METHOD path` under the hub (a send to a connection no client holds shows here only). */
  readonly restCalls: string[] = [];
  private readonly secret = randomBytes(32);
  private handshaken = false;
  private listeningOn = '';

  private constructor(
    private readonly server: Server,
    private readonly options: {
      hub: string;
      tls: { key: string; cert: string };
      upstreamUrl: () => string;
      upstreamToken: () => Promise<string>;
      acceptBearer: (token: string) => Promise<boolean>;
    },
  ) {}

  static async start(options: FakeWebPubSub['options']): Promise<FakeWebPubSub> {
    const server = createServer({ key: options.tls.key, cert: options.tls.cert });
    const fake = new FakeWebPubSub(server, options);
    const sockets = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false) });
    server.on('request', (req, res) => void fake.serveRest(req, res).catch(() => res.writeHead(500).end()));
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => void fake.upgrade(sockets, req, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    fake.listeningOn = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return fake;
  }

  get endpoint(): string {
    return this.listeningOn;
  }

  private get clientAudience(): string {
    return `${this.endpoint}/client/hubs/${this.options.hub}`;
  }

  async close(): Promise<void> {
    for (const connection of this.connections.values()) connection.socket.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async serveRest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.endpoint);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !(await this.options.acceptBearer(auth.slice('Bearer '.length)))) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ code: 'Unauthorized' }));
      return;
    }
    if (!url.searchParams.get('api-version')) return void res.writeHead(400).end();
    const hubPrefix = `/api/hubs/${this.options.hub}/`;
    if (!url.pathname.startsWith(hubPrefix)) return void res.writeHead(404).end();
    const rest = url.pathname.slice(hubPrefix.length);
    this.restCalls.push(`${req.method ?? ''} ${decodeURIComponent(rest)}`);
    const reason = url.searchParams.get('reason') ?? '';
    let match: RegExpExecArray | null;
    if (req.method === 'POST' && rest === ':generateToken') {
      const minutes = Number(url.searchParams.get('minutesToExpire') ?? '60');
      const jwt = new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setAudience(this.clientAudience).setIssuedAt().setExpirationTime(`${minutes}m`);
      const userId = url.searchParams.get('userId');
      const token = await (userId ? jwt.setSubject(userId) : jwt).sign(this.secret);
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
    }
    if (req.method === 'POST' && (match = /^connections\/([^/]+)\/:send$/.exec(rest))) {
      const connection = this.connections.get(decodeURIComponent(match[1]!));
      if (connection) this.toClient(connection, this.serverMessage(String(req.headers['content-type']), body));
      return void res.writeHead(202).end();
    }
    if (req.method === 'POST' && (match = /^users\/([^/]+)\/:send$/.exec(rest))) {
      const userId = decodeURIComponent(match[1]!);
      for (const connection of this.connections.values()) if (connection.userId === userId) this.toClient(connection, this.serverMessage(String(req.headers['content-type']), body));
      return void res.writeHead(202).end();
    }
    if (req.method === 'DELETE' && (match = /^connections\/([^/]+)$/.exec(rest))) {
      const connection = this.connections.get(decodeURIComponent(match[1]!));
      if (connection) this.disconnect(connection, reason);
      return void res.writeHead(204).end();
    }
    if (req.method === 'POST' && (match = /^users\/([^/]+)\/:closeConnections$/.exec(rest))) {
      const userId = decodeURIComponent(match[1]!);
      for (const connection of [...this.connections.values()]) if (connection.userId === userId) this.disconnect(connection, reason);
      return void res.writeHead(204).end();
    }
    res.writeHead(404).end();
  }

  private serverMessage(contentType: string, body: Buffer): string {
    if (contentType.startsWith('text/plain')) return JSON.stringify({ type: 'message', from: 'server', dataType: 'text', data: body.toString('utf8') });
    // The JSON subprotocol carries binary messages base64-encoded.
    if (contentType.startsWith('application/octet-stream')) return JSON.stringify({ type: 'message', from: 'server', dataType: 'binary', data: body.toString('base64') });
    return JSON.stringify({ type: 'message', from: 'server', dataType: 'json', data: JSON.parse(body.toString('utf8')) as unknown });
  }

  private toClient(connection: FakeConnection, raw: string): void {
    this.wire.push({ direction: 'to-client', raw });
    if (connection.socket.readyState === WebSocket.OPEN) connection.socket.send(raw);
  }

  private disconnect(connection: FakeConnection, reason: string): void {
    this.toClient(connection, JSON.stringify({ type: 'system', event: 'disconnected', message: reason }));
    connection.socket.close(1000, reason.slice(0, 120));
  }

  private async upgrade(sockets: WebSocketServer, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const refuse = (status: number): void => void socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    const url = new URL(req.url ?? '/', this.endpoint);
    if (url.pathname !== `/client/hubs/${this.options.hub}`) return refuse(404);
    let userId: string;
    try {
      const { payload } = await jwtVerify(url.searchParams.get('access_token') ?? '', this.secret, { audience: this.clientAudience });
      if (typeof payload.sub !== 'string') return refuse(401);
      userId = payload.sub;
    } catch {
      return refuse(401);
    }
    const connectionId = randomUUID();
    // The connect event carries the upgrade's headers and query (the access token is the service's, not passed on).
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name !== 'authorization').map(([name, value]) => [name, Array.isArray(value) ? value : [value ?? '']]));
    const query = Object.fromEntries([...url.searchParams].filter(([name]) => name !== 'access_token').map(([name, value]) => [name, [value]]));
    const connect = await this.postUpstream('azure.webpubsub.sys.connect', { connectionId, userId }, 'application/json',
      JSON.stringify({ claims: { sub: [userId] }, query, headers, subprotocols: [SUBPROTOCOL] }));
    if (connect === undefined || connect >= 300) return refuse(401);
    sockets.handleUpgrade(req, socket, head, (ws) => {
      const connection: FakeConnection = { connectionId, userId, socket: ws, upstream: Promise.resolve() };
      this.connections.set(connectionId, connection);
      this.toClient(connection, JSON.stringify({ type: 'system', event: 'connected', userId, connectionId }));
      this.queueUpstream(connection, 'azure.webpubsub.sys.connected', 'application/json', '{}');
      ws.on('message', (data) => {
        const raw = String(data);
        this.wire.push({ direction: 'from-client', raw });
        let message: { type?: unknown; event?: unknown; dataType?: unknown; data?: unknown };
        try {
          message = JSON.parse(raw) as typeof message;
        } catch {
          return;
        }
        if (message.type !== 'event' || typeof message.event !== 'string') return;
        const text = message.dataType === 'text' && typeof message.data === 'string';
        if (message.dataType === 'binary' && typeof message.data === 'string')
          return this.queueUpstream(connection, `azure.webpubsub.user.${message.event}`, 'application/octet-stream', Buffer.from(message.data, 'base64'), message.event);
        this.queueUpstream(connection, `azure.webpubsub.user.${message.event}`, text ? 'text/plain' : 'application/json', text ? (message.data as string) : JSON.stringify(message.data), message.event);
      });
      ws.on('close', () => {
        this.connections.delete(connectionId);
        this.queueUpstream(connection, 'azure.webpubsub.sys.disconnected', 'application/json', JSON.stringify({ reason: '' }));
      });
    });
  }

  private queueUpstream(connection: FakeConnection, type: string, contentType: string, body: string | Buffer, eventName?: string): void {
    connection.upstream = connection.upstream.then(async () => {
      const status = await this.postUpstream(type, connection, contentType, body, eventName);
      if (status === undefined || status >= 300) this.upstreamFailures.push(`${type} ${status ?? 'unreachable'}`);
    });
  }

  /** The abuse-protection handshake once, then the CloudEvent in binary content mode. */
  private async postUpstream(type: string, who: { connectionId: string; userId: string }, contentType: string, body: string | Buffer, eventName?: string): Promise<number | undefined> {
    const url = this.options.upstreamUrl();
    const origin = new URL(this.endpoint).host;
    if (!this.handshaken) {
      const answer = await this.call(url, 'OPTIONS', { 'webhook-request-origin': origin }, '');
      const allowed = answer?.headers['webhook-allowed-origin'];
      if (answer?.status !== 200 || (allowed !== '*' && !String(allowed ?? '').split(',').map((s) => s.trim()).includes(origin))) return undefined;
      this.handshaken = true;
    }
    const headers: Record<string, string> = {
      'content-type': contentType,
      authorization: `Bearer ${await this.options.upstreamToken()}`,
      'webhook-request-origin': origin,
      'ce-specversion': '1.0',
      'ce-type': type,
      'ce-source': `/hubs/${this.options.hub}/client/${who.connectionId}`,
      'ce-id': randomUUID(),
      'ce-time': new Date().toISOString(),
      'ce-awpsversion': '1.0',
      'ce-hub': this.options.hub,
      'ce-connectionid': who.connectionId,
      'ce-userid': who.userId,
      ...(eventName ? { 'ce-eventname': eventName } : {}),
    };
    return (await this.call(url, 'POST', headers, body))?.status;
  }

  private call(url: string, method: string, headers: Record<string, string>, body: string | Buffer): Promise<{ status: number; headers: IncomingMessage['headers'] } | undefined> {
    return new Promise((resolve) => {
      const req = httpsRequest(url, { method, headers, ca: this.options.tls.cert }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      req.on('error', () => resolve(undefined));
      req.end(body);
    });
  }
}
