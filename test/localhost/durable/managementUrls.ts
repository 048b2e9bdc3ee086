import { request } from 'node:http';
import { expect, vi } from 'vitest';

/** The payload createCheckStatusResponse returns: the only URLs these tests use to manage an instance. */
export interface ManagementUrls {
  readonly id: string;
  readonly statusQueryGetUri: string;
  readonly sendEventPostUri: string;
  readonly terminatePostUri: string;
  readonly purgeHistoryDeleteUri: string;
  readonly suspendPostUri: string;
  readonly resumePostUri: string;
}

export interface InstanceStatus {
  readonly instanceId: string;
  readonly runtimeStatus: string;
  readonly input: unknown;
  readonly output: unknown;
  readonly customStatus: unknown;
}

const TERMINAL = ['Completed', 'Failed', 'Terminated'];

/** Starts an orchestration through an app route that answers with createCheckStatusResponse. */
export async function startThrough(startUrl: string, input?: unknown): Promise<{ urls: ManagementUrls; location: string | null }> {
  const response = await fetch(startUrl, { method: 'POST', ...(input !== undefined ? { body: JSON.stringify(input) } : {}) });
  const text = await response.text();
  expect(response.status, text).toBe(202);
  return { urls: JSON.parse(text) as ManagementUrls, location: response.headers.get('location') };
}

export async function statusAt(url: string): Promise<{ httpStatus: number; body: InstanceStatus | undefined }> {
  const response = await fetch(url);
  const text = await response.text();
  return { httpStatus: response.status, body: response.status === 200 || response.status === 202 ? (JSON.parse(text) as InstanceStatus) : undefined };
}

/** Polls the status URL until the instance reaches one of `statuses`; the timeout only bounds a hang. */
export async function waitAt(url: string, statuses: readonly string[] = TERMINAL, timeout = 30_000): Promise<InstanceStatus> {
  let last: InstanceStatus | undefined;
  await vi.waitFor(
    async () => {
      last = (await statusAt(url)).body;
      expect(statuses).toContain(last?.runtimeStatus);
    },
    { timeout, interval: 100 },
  );
  return last!;
}

export const withEvent = (urls: ManagementUrls, event: string): string => urls.sendEventPostUri.replace('{eventName}', encodeURIComponent(event));
export const withReason = (template: string, reason: string): string => template.replace('{text}', encodeURIComponent(reason));

/** The same URL without its `code` query parameter, or with another value in it. */
export function withCode(url: string, code: string | undefined): string {
  const parsed = new URL(url);
  if (code === undefined) parsed.searchParams.delete('code');
  else parsed.searchParams.set('code', code);
  return parsed.toString();
}

/** A request with an arbitrary Host header (fetch does not let a caller choose it). */
export function rawRequest(url: string, method: string, host: string, body = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { host, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}
