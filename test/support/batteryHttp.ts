import { connect } from 'node:net';

export interface RawReply {
  status: number;
  headers: Record<string, string>;
  /** The head as sent, to check no header was injected. */
  head: string;
  body: string;
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = body.indexOf('\r\n', at);
    if (eol === -1) break;
    const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** Whether `raw` holds a whole reply: its head and a body of content-length bytes, or a chunked body's last chunk. */
function complete(raw: Buffer): boolean {
  const split = raw.indexOf('\r\n\r\n');
  if (split === -1) return false;
  const head = raw.subarray(0, split).toString('latin1').toLowerCase();
  if (/^http\/1\.1 (1\d\d|204|304) /.test(head)) return true;
  const length = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (length) return raw.length - split - 4 >= Number(length[1]);
  if (/\r\ntransfer-encoding:\s*chunked/.test(head)) return raw.subarray(split).includes('\r\n0\r\n\r\n');
  return false;
}

/**
 * One HTTP/1.1 request written byte for byte on a socket: no client normalises the path (`..` stays), validates
 * header values (CR LF stays) or sets a content type. The socket is closed once the reply is complete.
 */
export async function rawRequest(port: number, method: string, target: string, headers: Record<string, string>, body?: Buffer | string): Promise<RawReply> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  // Keep-alive, as ordinary clients do: with `connection: close` the server closes once it has answered, and a large
  // body still arriving then makes the kernel reset the connection, which can discard an early 413 unread.
  const lines = [`${method} ${target} HTTP/1.1`, `host: 127.0.0.1:${port}`];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (payload !== undefined) lines.push(`content-length: ${payload.length}`);
  const request = Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload ?? Buffer.alloc(0)]);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    // Written, not ended: a half-closed socket makes a Node server drop the request.
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(request));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // One reply is all we wait for: close as soon as it is complete.
      if (complete(Buffer.concat(chunks))) socket.destroy();
    });
    // The server may answer and close before reading a huge body; what it sent is the reply.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'ECONNRESET') reject(error);
    });
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.setTimeout(30_000, () => socket.destroy(new Error(`no reply to ${method} ${target.slice(0, 80)}`)));
  });
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.subarray(0, split === -1 ? raw.length : split).toString('latin1');
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const status = Number(statusLine.split(' ')[1]);
  const replyHeaders: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) replyHeaders[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let bodyBytes = split === -1 ? Buffer.alloc(0) : raw.subarray(split + 4);
  if ((replyHeaders['transfer-encoding'] ?? '').includes('chunked')) bodyBytes = dechunk(bodyBytes);
  return { status, headers: replyHeaders, head, body: bodyBytes.toString('utf8') };
}
