import type { ServerResponse } from 'node:http';
import { problemOf } from '../functions/http/problem';

/** A configuration problem the host reports as one line and exits, instead of a stack trace. */
export class LocalHostConfigError extends Error {
  override readonly name = 'LocalHostConfigError';
}

/** What the host says; `problemOf` gives it the same `type` style as the app's own problems. */
export interface HostProblem {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly code: string;
}

/** Writes an RFC 9457 problem (DESIGN.md §5 error shape); never includes a stack trace. */
export function sendProblem(res: ServerResponse, problem: HostProblem, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(problemOf(problem.status, problem.code, problem.detail, problem.title));
  res.writeHead(problem.status, {
    'content-type': 'application/problem+json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}
