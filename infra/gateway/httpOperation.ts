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
}

export interface HttpOperationResult {
  readonly status: number;
  readonly body: string;
  /** Response headers worth showing the agent; redacted by the caller like everything else. */
  readonly headers: Readonly<Record<string, string>>;
  readonly truncated: boolean;
}

const SHOWN_HEADERS = ['content-type', 'location', 'etag', 'retry-after', 'x-ratelimit-remaining'];

async function readLimited(response: Response, limit: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  if (!response.body) return { bytes: Buffer.alloc(0), truncated: false };
  const reader = response.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { bytes: Buffer.concat(chunks), truncated: false };
      chunks.push(Buffer.from(value));
      size += value.byteLength;
      if (size > limit) return { bytes: Buffer.concat(chunks).subarray(0, limit), truncated: true };
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

export async function performHttpOperation(
  op: Extract<GatewayOperation, { kind: 'http' }>,
  value: string,
  limits: HttpOperationLimits,
  fetchImpl: typeof fetch = fetch,
): Promise<HttpOperationResult> {
  const headers = new Headers(op.headers);
  headers.set(op.header, authorizationValue(op.scheme, value, (text) => Buffer.from(text, 'utf8').toString('base64')));
  const response = await fetchImpl(op.url, {
    method: op.method,
    headers,
    redirect: 'manual',
    signal: AbortSignal.timeout(limits.timeoutMs),
    ...(op.body !== undefined ? { body: op.body } : {}),
  });
  const { bytes, truncated } = await readLimited(response, limits.maxResponseBytes);
  const shown: Record<string, string> = {};
  for (const name of SHOWN_HEADERS) {
    const header = response.headers.get(name);
    if (header !== null) shown[name] = header;
  }
  return { status: response.status, body: bytes.toString('utf8'), headers: shown, truncated };
}
