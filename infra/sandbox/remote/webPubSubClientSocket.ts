import { EventEmitter } from 'node:events';
import { request } from 'node:https';
import { WebSocket } from 'ws';
import { CLOSE_REVOKED } from './hostChannelServer';
import { AGENT_FRAME_EVENT, REVOKED_REASON_PREFIX, WEB_PUBSUB_SUBPROTOCOL } from './webPubSubHostChannel';

/** What Web PubSub sends a `json.webpubsub.azure.v1` client: server messages and system messages. */
interface ServiceMessage {
  type?: unknown;
  from?: unknown;
  event?: unknown;
  data?: unknown;
  message?: unknown;
}

/**
 * The agent's side of a channel that ends in Web PubSub, shaped like the `ws` socket the agent uses locally:
 * it negotiates a client URL from the platform with the host credential, connects to Web PubSub with the
 * `json.webpubsub.azure.v1` subprotocol, hands the platform's frames on byte for byte, and sends its own as
 * user events. A connection closed with the revocation reason, or a negotiation refused as revoked, reads as
 * the local channel's revocation close code, so the agent stops instead of reconnecting.
 */
export class WebPubSubClientSocket extends EventEmitter {
  private socket: WebSocket | undefined;
  private disconnectedBecause = '';
  private closedEarly = false;

  constructor(private readonly platform: string, private readonly credential: string, private readonly ca: string | undefined) {
    super();
    void this.open().catch((error: unknown) => this.emit('error', error));
  }

  get readyState(): number {
    return this.socket?.readyState ?? WebSocket.CONNECTING;
  }

  get bufferedAmount(): number {
    return this.socket?.bufferedAmount ?? 0;
  }

  send(raw: string): void {
    this.socket?.send(JSON.stringify({ type: 'event', event: AGENT_FRAME_EVENT, dataType: 'text', data: raw }));
  }

  close(code?: number, reason?: string): void {
    this.closedEarly = true;
    this.socket?.close(code, reason);
  }

  private async open(): Promise<void> {
    const negotiated = await postWithCredential(`${this.platform}/api/hosts/negotiate`, this.credential, this.ca);
    if (negotiated.status !== 200 || typeof negotiated.body.url !== 'string') {
      if (negotiated.body.code === 'HOST.REVOKED') return void this.emit('close', CLOSE_REVOKED);
      return void this.emit('unexpected-response', undefined, { statusCode: negotiated.status });
    }
    if (!negotiated.body.url.startsWith('wss://')) throw new Error('the platform negotiated a channel that is not wss://');
    if (this.closedEarly) return void this.emit('close', 1000);
    const socket = new WebSocket(negotiated.body.url, WEB_PUBSUB_SUBPROTOCOL, { ...(this.ca ? { ca: this.ca } : {}), maxPayload: 4 * 1024 * 1024 });
    this.socket = socket;
    socket.on('message', (data) => {
      let message: ServiceMessage;
      try {
        message = JSON.parse(String(data)) as ServiceMessage;
      } catch {
        return;
      }
      if (message.type === 'message' && message.from === 'server' && typeof message.data === 'string') this.emit('message', message.data);
      if (message.type === 'system' && message.event === 'disconnected' && typeof message.message === 'string') this.disconnectedBecause = message.message;
    });
    socket.on('unexpected-response', (req, res) => this.emit('unexpected-response', req, res));
    socket.on('error', (error) => this.emit('error', error));
    socket.on('close', (code) => this.emit('close', this.disconnectedBecause.startsWith(REVOKED_REASON_PREFIX) ? CLOSE_REVOKED : code));
  }
}

function postWithCredential(url: string, credential: string, ca: string | undefined): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, ...(ca ? { ca } : {}) }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += String(chunk)));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch {
          resolve({ status: res.statusCode ?? 0, body: {} });
        }
      });
    });
    req.on('error', reject);
    req.end('{}');
  });
}
