import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { SSH_PATH } from './protocol';
import { SSH_DATA_EVENT, SSH_TICKET_HEADER } from './webPubSubSshRelay';

/** Web PubSub's JSON client subprotocol (binary data travels base64 in it). */
const WEB_PUBSUB_SUBPROTOCOL = 'json.webpubsub.azure.v1';
const ticketSchema = z.string().regex(/^dps_[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{16,}$/, 'the ticket is the `ticket` of POST .../runs/{runId}/ssh');

const args = z.union([
  z.object({
    platform: z.string().regex(/^https:\/\/[^\s/]+$/, '--platform must be an https:// origin: the tunnel runs over TLS only'),
    pubsub: z.undefined(),
    ca: z.string().min(1).optional(),
    ticket: ticketSchema,
  }),
  z.object({
    platform: z.undefined(),
    pubsub: z.string().regex(/^wss:\/\/[^\s/]+\/client\/hubs\/[^\s]+$/, '--pubsub must be the wss:// `pubsubUrl` of POST .../runs/{runId}/ssh'),
    ca: z.string().min(1).optional(),
    ticket: ticketSchema,
  }),
]);

const USAGE = 'usage: npm run -s ssh-proxy -- (--platform <https url> | --pubsub <wss url>) [--ca <pem>] <ticket>';

/**
 * `npm run -s ssh-proxy -- --platform <https url> [--ca <pem>] <ticket>`: an OpenSSH `ProxyCommand`. It opens a
 * WebSocket to the platform (wss://, certificate verified against --ca or the system roots, never off) presenting
 * the single-use ticket, then pipes stdin and stdout as raw bytes. Nothing but the SSH stream goes to stdout.
 * With `--pubsub <url>` (the channel ends in Azure Web PubSub) it connects to that client URL instead, presents the
 * ticket on the upgrade, and carries the bytes as Web PubSub binary messages.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], options: { platform: { type: 'string' }, pubsub: { type: 'string' }, ca: { type: 'string' } }, allowPositionals: true });
  const parsed = args.safeParse({ platform: values.platform?.replace(/\/$/, ''), pubsub: values.pubsub, ca: values.ca, ticket: positionals[0] });
  if (!parsed.success) {
    process.stderr.write(`ssh-proxy: ${[...new Set(parsed.error.issues.map((i) => i.message))].join('; ')}\n${USAGE}\n`);
    return 2;
  }
  const target = parsed.data;
  const { pubsub, ca, ticket } = target;
  const tls = { ...(ca ? { ca: readFileSync(ca, 'utf8') } : {}), maxPayload: 4 * 1024 * 1024 };
  const socket = target.pubsub !== undefined
    ? new WebSocket(target.pubsub, WEB_PUBSUB_SUBPROTOCOL, { headers: { [SSH_TICKET_HEADER]: ticket }, ...tls })
    : new WebSocket(target.platform.replace(/^https:/, 'wss:') + SSH_PATH, { headers: { authorization: `Bearer ${ticket}` }, ...tls });
  process.stdin.pause();
  return new Promise<number>((resolve) => {
    let closedBecause = '';
    socket.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.on('end', () => {
        const problem = (() => {
          try {
            return JSON.parse(body) as { code?: string; detail?: string };
          } catch {
            return {};
          }
        })();
        process.stderr.write(`ssh-proxy: the platform refused the session (HTTP ${res.statusCode ?? 0} ${problem.code ?? ''}): ${problem.detail ?? ''}\n`);
        resolve(1);
      });
    });
    socket.on('error', (error) => {
      process.stderr.write(`ssh-proxy: ${error.message}\n`);
      resolve(1);
    });
    const pipeStdin = (send: (chunk: Buffer) => void): void => {
      process.stdin.on('data', send);
      process.stdin.on('end', () => socket.close(1000, 'the client closed its input'));
      process.stdin.resume();
    };
    if (pubsub) {
      // The client's bytes wait for the sandbox's SSH server's first bytes: they then cannot overtake the tunnel's opening.
      let piping = false;
      socket.on('message', (data) => {
        const message = parsedMessage(String(data));
        if (message?.type === 'message' && message.dataType === 'binary' && typeof message.data === 'string') {
          process.stdout.write(Buffer.from(message.data, 'base64'));
          if (!piping) {
            piping = true;
            pipeStdin((chunk) => socket.send(JSON.stringify({ type: 'event', event: SSH_DATA_EVENT, dataType: 'binary', data: chunk.toString('base64') })));
          }
        }
        if (message?.type === 'system' && message.event === 'disconnected' && typeof message.message === 'string') closedBecause = message.message;
      });
    } else {
      socket.on('open', () => pipeStdin((chunk) => socket.send(chunk)));
      socket.on('message', (data: Buffer) => process.stdout.write(data));
    }
    socket.on('close', (_code, reason) => {
      const why = closedBecause || reason.toString('utf8');
      if (why.length > 0) process.stderr.write(`ssh-proxy: session closed: ${why}\n`);
      resolve(0);
    });
  });
}

function parsedMessage(raw: string): { type?: unknown; event?: unknown; dataType?: unknown; data?: unknown; message?: unknown } | undefined {
  try {
    return JSON.parse(raw) as { type?: unknown };
  } catch {
    return undefined;
  }
}
