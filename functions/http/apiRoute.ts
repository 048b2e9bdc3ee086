import type { FunctionInput, HttpRequest, HttpResponseInit, InvocationContext } from '@azure/functions';
import { AuthenticationError, type CallerAuthenticator } from '../../domain/ports/callerAuthenticator';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import type { WorkspaceRecords } from '../../domain/ports/workspaceRecords';
import type { Caller } from '../../domain/services/workspaces';
import { HttpProblem, describeUnexpected, problemFromError, problemResponse } from './problem';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface ApiServices {
  readonly deps: ServiceDependencies;
  readonly authenticator: CallerAuthenticator;
  /** Projections beside the log: removed at deletion, rebuilt at recovery. */
  readonly records: WorkspaceRecords;
}

export interface RouteInput {
  readonly request: HttpRequest;
  readonly caller: Caller;
  readonly services: ApiServices;
  readonly context: InvocationContext;
}

/** One HTTP route of the public API: what it is, and its handler over injected services. */
export interface ApiRoute {
  readonly name: string;
  readonly method: HttpMethod;
  /** Route template relative to `/api`, as Functions writes it: `workspaces/{ws}/secrets/{name}`. */
  readonly route: string;
  readonly handle: (input: RouteInput) => Promise<HttpResponseInit>;
  /** Extra input bindings the handler reads from its context, e.g. `df.input.durableClient()`. */
  readonly extraInputs?: readonly FunctionInput[];
}

const CORRELATION = /^[A-Za-z0-9._-]{1,64}$/;

function correlationIdOf(request: HttpRequest, services: ApiServices): string {
  const given = request.headers.get('x-correlation-id');
  return given && CORRELATION.test(given) ? given : services.deps.ids.next();
}

function withHeaders(response: HttpResponseInit, headers: Record<string, string>): HttpResponseInit {
  return { ...response, headers: { ...(response.headers as Record<string, string> | undefined), ...headers } };
}

/**
 * Authenticates, runs the handler, and maps every failure to problem+json. Unexpected errors are logged by
 * class and code only (an SDK error's message may quote a request body, and so a value).
 */
export async function invokeApiRoute(
  route: ApiRoute,
  services: ApiServices,
  request: HttpRequest,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const correlationId = correlationIdOf(request, services);
  const common = { 'x-correlation-id': correlationId, 'cache-control': 'no-store' };
  try {
    let user: string;
    try {
      user = (await services.authenticator.authenticate(request.headers.get('authorization'))).userId;
    } catch (error) {
      if (error instanceof AuthenticationError)
        throw new HttpProblem(401, error.code, error.message, { 'www-authenticate': 'Bearer realm="disco-parrot"' });
      throw error;
    }
    const response = await route.handle({ request, caller: { actor: user, correlationId }, services, context });
    return withHeaders(response, common);
  } catch (error) {
    const { response, expected } = problemFromError(error);
    if (!expected) context.error(`${route.name} failed: ${describeUnexpected(error)} correlationId=${correlationId}`);
    return withHeaders(response, common);
  }
}

export function json(status: number, body: unknown): HttpResponseInit {
  return { status, jsonBody: body, headers: { 'content-type': 'application/json' } };
}

export function noContent(status = 204): HttpResponseInit {
  return { status };
}

export { problemResponse };
