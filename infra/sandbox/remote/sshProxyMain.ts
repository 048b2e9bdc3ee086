import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { SSH_PATH } from './protocol';

const args = z.object({
  platform: z.string().regex(/^https:\/\/[^\s/]+$/, '--platform must be an https:// origin: the tunnel runs over TLS only'),
  ca: z.string().min(1).optional(),
  ticket: z.string().regex(/^dps_[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{16,}$/, 'the ticket is the `ticket` of POST .../runs/{runId}/ssh'),
});

/**
 * `npm run -s ssh-proxy -- --platform <https url> [--ca <pem>] <ticket>`: an OpenSSH `ProxyCommand`. It opens a
 * WebSocket to the platform (wss://, certificate verified against --ca or the system roots, never off) presenting
 * the single-use ticket, then pipes stdin and stdout as raw bytes. Nothing but the SSH stream goes to stdout.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: [...argv], options: { platform: { type: 'string' }, ca: { type: 'string' } }, allowPositionals: true });
  const parsed = args.safeParse({ platform: values.platform?.replace(/\/$/, ''), ca: values.ca, ticket: positionals[0] });
  if (!parsed.success) {
    process.stderr.write(`ssh-proxy: ${parsed.error.issues.map((i) => i.message).join('; ')}\nusage: npm run -s ssh-proxy -- --platform <https url> [--ca <pem>] <ticket>\n`);
    return 2;
  }
  const { platform, ca, ticket } = parsed.data;
  const socket = new WebSocket(platform.replace(/^https:/, 'wss:') + SSH_PATH, {
    headers: { authorization: `Bearer ${ticket}` },
    ...(ca ? { ca: readFileSync(ca, 'utf8') } : {}),
    maxPayload: 1024 * 1024,
  });
  process.stdin.pause();
  return new Promise<number>((resolve) => {
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
    socket.on('open', () => {
      process.stdin.on('data', (chunk: Buffer) => socket.send(chunk));
      process.stdin.on('end', () => socket.close(1000, 'the client closed its input'));
      process.stdin.resume();
    });
    socket.on('message', (data: Buffer) => process.stdout.write(data));
    socket.on('close', (_code, reason) => {
      if (reason.length > 0) process.stderr.write(`ssh-proxy: session closed: ${reason.toString('utf8')}\n`);
      resolve(0);
    });
  });
}
