import { authorizationValue, type GatewayOperation } from '../../domain/gateway';

/**
 * The gateway's `http` operation, run by the platform process itself: the credential goes into one header
 * of one request and never enters the sandbox. Redirects are never followed (a 3xx comes back as it is, so
 * the credential cannot be carried to a host the allow-list did not approve), the request has a timeout and
 * the response body is read up to a limit and then abandoned.
 */

export interface HttpOperationLimits {
  readonly timeoutMs: number;
  /** Bytes of the response body read before the rest is dropped. */
  readonly maxResponseBytes: number;
  /** Aborted when the secret is revoked mid-request. */
  readonly signal?: AbortSignal;
}

export interface HttpOperationResult {
  readonly status: number;
  /** Redacted as it streamed in. */
  readonly body: string;
  /** Response headers worth showing the agent; redacted by the caller like everything else. */
  readonly headers: Readonly<Record<string, string>>;
  readonly truncated: boolean;
}

const SHOWN_HEADERS = ['content-type', 'location', 'etag', 'retry-after', 'x-ratelimit-remaining'];

/** A redaction stream: `push` returns what can no longer be part of a value, `end` the rest. */
export interface RedactionStream {
  push(chunk: string): string;
  end(): string;
}

/**
 * Reads the body through the redaction stream, up to `limit` raw bytes. When the limit cuts the body, what
 * the stream still holds back is dropped, not flushed: it may be the start of a value the cut made
 * unrecognisable, so it must not come out unredacted.
 */
async function readRedacted(response: Response, limit: number, stream: RedactionStream): Promise<{ text: string; truncated: boolean }> {
  if (!response.body) return { text: stream.end(), truncated: false };
  const reader = response.body.getReader();
  const decoder = new TextDecoder('utf-8');
  let size = 0;
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text: text + stream.push(decoder.decode()) + stream.end(), truncated: false };
      const room = limit - size;
      size += value.byteLength;
      if (value.byteLength > room) return { text: text + stream.push(decoder.decode(value.subarray(0, room), { stream: true })), truncated: true };
      text += stream.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

export async function performHttpOperation(
  op: Extract<GatewayOperation, { kind: 'http' }>,
  value: string,
  limits: HttpOperationLimits,
  redaction: () => RedactionStream,
  fetchImpl: typeof fetch = fetch,
): Promise<HttpOperationResult> {
  const headers = new Headers(op.headers);
  headers.set(op.header, authorizationValue(op.scheme, value, (text) => Buffer.from(text, 'utf8').toString('base64')));
  const response = await fetchImpl(op.url, {
    method: op.method,
    headers,
    redirect: 'manual',
    signal: limits.signal ? AbortSignal.any([AbortSignal.timeout(limits.timeoutMs), limits.signal]) : AbortSignal.timeout(limits.timeoutMs),
    ...(op.body !== undefined ? { body: op.body } : {}),
  });
  const { text, truncated } = await readRedacted(response, limits.maxResponseBytes, redaction());
  const shown: Record<string, string> = {};
  for (const name of SHOWN_HEADERS) {
    const header = response.headers.get(name);
    if (header !== null) shown[name] = header;
  }
  return { status: response.status, body: text, headers: shown, truncated };
}
