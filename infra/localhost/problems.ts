import type { ServerResponse } from 'node:http';

/** A configuration problem the host reports as one line and exits, instead of a stack trace. */
export class LocalHostConfigError extends Error {
  override readonly name = 'LocalHostConfigError';
}

export interface Problem {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly code: string;
}

/** Writes an RFC 9457 problem (DESIGN.md §5 error shape); never includes a stack trace. */
export function sendProblem(res: ServerResponse, problem: Problem, extraHeaders: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({
    type: `urn:disco-parrot:problem:${problem.code.toLowerCase()}`,
    title: problem.title,
    status: problem.status,
    detail: problem.detail,
    code: problem.code,
  });
  res.writeHead(problem.status, {
    'content-type': 'application/problem+json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...extraHeaders,
  });
  res.end(body);
}
