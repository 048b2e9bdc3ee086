/** One answer of the public API, as a developer tool sees it. */
export interface ApiReply {
  readonly status: number;
  readonly text: string;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  readonly json: unknown;
  readonly contentType: string;
}

/** Calls the API as a user over HTTP (the demo, end-to-end tests, benchmarks). */
export async function callApi(baseUrl: string, token: string, method: string, route: string, body?: unknown): Promise<ApiReply> {
  const response = await fetch(`${baseUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json, contentType: response.headers.get('content-type') ?? '' };
}
