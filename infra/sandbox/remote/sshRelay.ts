import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type RawData } from 'ws';
import { SSH_ERROR } from '../../../domain/catalogue';
import { DomainError } from '../../../domain/errors';
import type { SshTargets } from '../../../domain/ports/sshTargets';
import type { SshTunnel, SshTunnelListener, SshUpgradeHandler } from './hostChannelServer';

/** A redeemed ticket's session (domain/services/runSsh.ts). */
export interface SshSession {
  readonly workspaceId: string;
  readonly runId: string;
  readonly sessionId: string;
  readonly actor: string;
}

/** What the relay needs from the use cases, bound by the composition. */
export interface SshTicketAuthority {
  /** Spends a ticket (once) and records the session as opened; throws a DomainError (recorded) when it opens nothing. */
  redeem(ticket: string): Promise<SshSession>;
  recordClosed(session: SshSession, reason: string): Promise<void>;
}

export interface SshTunnels {
  openSshTunnel(runId: string, listener: SshTunnelListener): SshTunnel | undefined;
}

/** How far a slow IDE may fall behind before its session is cut (the agent bounds its side the same way). */
const MAX_CLIENT_BACKLOG = 4 * 1024 * 1024;

/**
 * The platform's end of an IDE's `ssh-proxy`: a WebSocket next to the host channel whose bearer is a single-use
 * ticket. A redeemed ticket's bytes go to the run's host agent as `sshData` frames on that host's channel and come
 * back the same way; the platform sees only the SSH transport's ciphertext.
 */
export class SshRelay implements SshUpgradeHandler {
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });

  constructor(private readonly options: { authority: SshTicketAuthority; tunnels: SshTunnels; log?: (line: string) => void }) {}

  upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    void this.serve(req, socket, head);
  }

  private async serve(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const log = this.options.log ?? (() => undefined);
    const header = req.headers.authorization ?? '';
    let session: SshSession;
    try {
      if (!header.startsWith('Bearer ')) throw new DomainError(SSH_ERROR.TICKET_INVALID, 'An SSH ticket is required (Authorization: Bearer <ticket>)', 'forbidden');
      session = await this.options.authority.redeem(header.slice('Bearer '.length));
    } catch (error) {
      const problem = error instanceof DomainError ? { code: error.code, detail: error.message } : { code: SSH_ERROR.TICKET_INVALID, detail: 'The SSH ticket is not valid' };
      const body = JSON.stringify({ type: 'about:blank', title: 'SSH session refused', status: 403, ...problem });
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      log(`ssh relay: refused a tunnel (${problem.code})`);
      return;
    }
    this.sockets.handleUpgrade(req, socket, head, (ws) => {
      let recorded = false;
      let tunnel: SshTunnel | undefined;
      const finish = (reason: string): void => {
        if (recorded) return;
        recorded = true;
        tunnel?.close();
        if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000, reason.slice(0, 120));
        void this.options.authority.recordClosed(session, reason).catch(() => undefined);
        log(`ssh relay: session ${session.sessionId} into run ${session.runId} closed (${reason})`);
      };
      tunnel = this.options.tunnels.openSshTunnel(session.runId, {
        data: (bytes) => {
          if (ws.bufferedAmount > MAX_CLIENT_BACKLOG) return finish('the client fell too far behind');
          ws.send(bytes);
        },
        closed: (reason) => finish(reason),
      });
      const open = tunnel;
      if (!open) return finish('the run has no live sandbox on a host this platform reaches');
      ws.on('message', (data: RawData) => open.send(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)));
      ws.on('close', () => finish('the client disconnected'));
      ws.on('error', () => finish('the client connection failed'));
      log(`ssh relay: session ${session.sessionId} into run ${session.runId} opened for ${session.actor}`);
    });
  }
}

/** What the SSH route needs of this process's remote host: where a run's sandbox is, and how the proxy reaches it. */
export interface SshAccessPoint {
  readonly targets: SshTargets;
  /** The URL `ssh-proxy --platform` dials (the host channel's endpoint), when the platform serves the tunnel itself. */
  readonly platformUrl?: string;
  /** When the channel ends in Web PubSub: the client URL `ssh-proxy --pubsub` connects to for a ticket (webPubSubSshRelay.ts). */
  clientUrl?(ticketId: string): Promise<string>;
  /** The certificate the proxy pins with `--ca`, when the endpoint's is self-signed (locally). */
  readonly caFile?: string;
}

let current: SshAccessPoint | undefined;
/** The process's SSH access point, set by the composition when it serves the host channel. */
export const sshAccessPoint = {
  set(point: SshAccessPoint | undefined): void {
    current = point;
  },
  get(): SshAccessPoint | undefined {
    return current;
  },
};
