import type { HttpResponseInit } from '@azure/functions';
import { type DomainErrorKind, isDomainError } from '../../domain/errors';
import { describeUnexpected } from '../../infra/system/describeUnexpected';

export { describeUnexpected };

/** RFC 9457 problem details, our stable `code` added. Never a stack trace, never a secret value. */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly code: string;
}

const statusOfKind: Record<DomainErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  forbidden: 403,
  conflict: 409,
  precondition: 409,
  too_large: 413,
  unavailable: 503,
  gone: 410,
  upstream: 502,
};

const titles: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  410: 'Gone',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}

/** The one problem shape both edges (the Functions app and the local host itself) answer with. */
export function problemOf(status: number, code: string, detail: string, title: string = titles[status] ?? 'Error'): Problem {
  return { type: `https://discoparrot.dev/problems/${code.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`, title, status, detail, code };
}

export function problemResponse(status: number, code: string, detail: string, headers: Record<string, string> = {}): HttpResponseInit {
  const problem = problemOf(status, code, detail);
  return {
    status,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(problem),
  };
}

/**
 * Turns anything thrown into a problem response. Domain errors and HttpProblems carry messages written to
 * be shown; anything else (an SDK error may carry a request body, hence a value) becomes a bare 500.
 */
export function problemFromError(error: unknown): { response: HttpResponseInit; expected: boolean } {
  if (error instanceof HttpProblem) return { response: problemResponse(error.status, error.code, error.detail, error.headers), expected: true };
  if (isDomainError(error)) return { response: problemResponse(statusOfKind[error.kind], error.code, error.message), expected: true };
  return {
    response: problemResponse(500, 'INTERNAL.ERROR', 'The request failed on the server; it has been logged without its data.'),
    expected: false,
  };
}
