import { app, type HttpRequest, type HttpResponseInit, type InvocationContext } from '@azure/functions';
import { AuthenticationError } from '../domain/ports/callerAuthenticator';
import type { Gateway } from '../domain/services/gateway';
import { GATEWAY_BODY_LIMIT, gatewayRequestBody, toOperation } from '../infra/gateway/operationSchema';
import { readJsonBody } from './http/jsonBody';
import { HttpProblem, describeUnexpected, problemFromError, problemResponse } from './http/problem';
import { getGateway } from './composition';
import { SettingsError } from './settings';

/**
 * `POST /api/gateway/operations`: the sandbox's agent asks the platform for work that needs a credential.
 * Authenticated by the per-container bearer (GATEWAY_TOKEN), not a user JWT; the route is anonymous to the
 * Functions host because the bearer is checked here. See docs/gateway.md.
 */

export const GATEWAY_FUNCTION = 'gatewayOperations';
const CORRELATION = /^[A-Za-z0-9._-]{1,64}$/;
const CHALLENGE = 'Bearer realm="disco-parrot-gateway", error="invalid_token"';
const UNAUTHENTICATED_LOG_INTERVAL_MS = 60_000;
let lastUnauthenticatedLog = 0;

/** Unauthenticated denials belong to no workspace: counted, and logged at most once a minute (§3). */
function noteUnauthenticated(gateway: Gateway, context: InvocationContext, code: string): void {
  const now = Date.now();
  if (now - lastUnauthenticatedLog < UNAUTHENTICATED_LOG_INTERVAL_MS) return;
  lastUnauthenticatedLog = now;
  context.warn(`gateway: unauthenticated request refused (${code}); ${gateway.unauthenticated} refused since start`);
}

export async function handleGatewayOperation(gateway: Gateway, request: HttpRequest, context: InvocationContext): Promise<HttpResponseInit> {
  const given = request.headers.get('x-correlation-id');
  const correlationId = given && CORRELATION.test(given) ? given : context.invocationId;
  const common = { 'x-correlation-id': correlationId, 'cache-control': 'no-store' };
  try {
    let binding;
    try {
      binding = await gateway.authenticate(request.headers.get('authorization'));
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      noteUnauthenticated(gateway, context, error.code);
      throw new HttpProblem(401, error.code, error.message, { 'www-authenticate': CHALLENGE });
    }
    let body;
    try {
      body = await readJsonBody(request, gatewayRequestBody, GATEWAY_BODY_LIMIT);
    } catch (error) {
      if (error instanceof HttpProblem) await gateway.refuseRequest(binding, correlationId, error.code).catch(() => undefined);
      throw error;
    }
    if (body.kind === 'identity-token') {
      // The token is the agent's: it goes back in this response and nowhere else (no event, log or row holds it).
      const issued = await gateway.identityToken(binding, body.identity, correlationId);
      return { status: 200, jsonBody: issued, headers: { 'content-type': 'application/json', ...common } };
    }
    const { operation, remotePath } = toOperation(body);
    const result = await gateway.perform(binding, operation, remotePath, correlationId);
    return { status: 200, jsonBody: result, headers: { 'content-type': 'application/json', ...common } };
  } catch (error) {
    const { response, expected } = problemFromError(error);
    if (!expected) context.error(`${GATEWAY_FUNCTION} failed: ${describeUnexpected(error)} correlationId=${correlationId}`);
    return { ...response, headers: { ...(response.headers as Record<string, string>), ...common } };
  }
}

app.http(GATEWAY_FUNCTION, {
  route: 'gateway/operations',
  methods: ['POST'],
  authLevel: 'anonymous',
  handler: async (request, context) => {
    let gateway: Gateway;
    try {
      gateway = await getGateway();
    } catch (error) {
      const reason = error instanceof SettingsError ? error.message : describeUnexpected(error);
      context.error(`${GATEWAY_FUNCTION}: the app could not start the gateway: ${reason}`);
      return problemResponse(503, 'APP.NOT_READY', 'The service is not configured correctly; see the host log.');
    }
    return handleGatewayOperation(gateway, request, context);
  },
});
