import { z } from 'zod';

/** The activity name the Durable extension schedules for `callHttp` (its built-in HTTP activity). */
export const HTTP_ACTIVITY = 'BuiltIn::HttpActivity';

const durableHttpRequestSchema = z.object({
  method: z.string().min(1),
  uri: z.url(),
  content: z.string().nullish(),
  headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).nullish(),
  tokenSource: z.unknown().optional(),
  asynchronousPatternEnabled: z.boolean().optional(),
}).loose();

export interface DurableHttpResponse {
  readonly statusCode: number;
  readonly headers: Record<string, string>;
  readonly content: string;
}

export interface DurableHttpOptions {
  /** Wait between polls when a 202 names no Retry-After (the extension's default is 30 s). */
  readonly defaultPollDelayMs?: number;
  /** A bound on polls, so a server that answers 202 forever does not hold an activity slot forever. */
  readonly maxPolls?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs one `callHttp` request as the extension's HTTP activity does: sends it, and while the answer is
 * 202 with a Location (and polling is on), waits Retry-After (seconds) and GETs the Location, returning
 * the first other answer. Managed-identity token sources need Azure and are refused.
 */
export async function runDurableHttp(input: unknown, options: DurableHttpOptions = {}): Promise<DurableHttpResponse> {
  const parsed = durableHttpRequestSchema.safeParse(input);
  if (!parsed.success) throw new Error(`callHttp: the request is malformed (${parsed.error.issues[0]?.path.join('.') ?? 'request'}).`);
  const request = parsed.data;
  if (request.tokenSource !== undefined && request.tokenSource !== null)
    throw new Error('callHttp: managed identity token sources are not supported by the local Durable engine.');
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers ?? {})) headers[name] = Array.isArray(value) ? value.join(', ') : value;

  let url = request.uri;
  let response = await send(url, { method: request.method.toUpperCase(), headers, ...(request.content ? { body: request.content } : {}) });
  for (let polls = 0; request.asynchronousPatternEnabled !== false && response.statusCode === 202; polls++) {
    const location = header(response, 'location');
    if (!location) break;
    if (polls >= (options.maxPolls ?? 10_000)) throw new Error(`callHttp: ${request.uri} still answers 202 after ${polls} polls.`);
    const retryAfter = Number(header(response, 'retry-after'));
    await sleep(Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : (options.defaultPollDelayMs ?? 30_000));
    url = new URL(location, url).toString();
    response = await send(url, { method: 'GET', headers });
  }
  return response;
}

async function send(url: string, init: { method: string; headers: Record<string, string>; body?: string }): Promise<DurableHttpResponse> {
  const response = await fetch(url, { ...init, redirect: 'manual' });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  return { statusCode: response.status, headers, content: await response.text() };
}

const header = (response: DurableHttpResponse, name: string): string | undefined =>
  Object.entries(response.headers).find(([key]) => key.toLowerCase() === name)?.[1];
