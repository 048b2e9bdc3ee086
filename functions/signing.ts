import { app, type HttpResponseInit, type InvocationContext, type Timer } from '@azure/functions';
import { describeUnexpected, problemResponse } from '../infra/http/problem';
import type { PublicJwk } from '../domain/signingKeys';
import type { SigningKeys } from '../infra/identity/signingKeys';
import { WORKLOAD_CLAIMS } from '../infra/identity/workloadIdentityTokens';
import { getServices, getSigning } from './composition';
import { DEFAULT_SCHEDULES, registrationSettings } from './settings';

/** Six-field NCRONTAB, UTC: Sundays at 03:00. Override with the app setting `SIGNING_KEY_ROTATION_SCHEDULE`. */
export const DEFAULT_ROTATION_SCHEDULE = DEFAULT_SCHEDULES.SIGNING_KEY_ROTATION_SCHEDULE;
export const ROTATE_SIGNING_KEYS = 'rotateSigningKeys';
export const JWKS_FUNCTION = 'jwks';
/**
 * Relative to the `api` route prefix, so served at `/api/.well-known/jwks.json`. Azure Functions has one route
 * prefix for the whole app; a root `/.well-known/jwks.json` is a rewrite at the front door (docs/signing.md).
 */
export const JWKS_ROUTE = '.well-known/jwks.json';
/** Workload identity tokens' issuer metadata and RS256 keys (docs/identity.md), under the same prefix as `iss`. */
export const OPENID_CONFIGURATION_FUNCTION = 'openidConfiguration';
export const OPENID_CONFIGURATION_ROUTE = '.well-known/openid-configuration';
export const IDENTITY_JWKS_FUNCTION = 'identityJwks';
export const IDENTITY_JWKS_ROUTE = '.well-known/identity-jwks.json';

/** A ring as the JWKS routes read it. */
type PublishedRing = Pick<SigningKeys<PublicJwk>, 'jwks'>;

/** `GET /.well-known/jwks.json`: public, unauthenticated; the current key and retired keys whose tokens may be live. */
export async function jwksResponse(keys: PublishedRing, context: InvocationContext, functionName = JWKS_FUNCTION): Promise<HttpResponseInit> {
  try {
    return {
      status: 200,
      jsonBody: await keys.jwks(),
      // Short enough that a verifier sees a new key soon; verifiers also refetch on an unknown kid.
      headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' },
    };
  } catch (error) {
    context.error(`${functionName} failed: ${describeUnexpected(error)}`);
    return problemResponse(503, 'SIGNING.KEYS_UNAVAILABLE', 'The signing keys could not be loaded; see the host log.');
  }
}

/**
 * `GET /api/.well-known/openid-configuration`: the OpenID Provider metadata a cloud's token exchange reads to find
 * the keys of the workload identity issuer. `issuer` is exactly the tokens' `iss`; `jwks_uri` the RS256 keys only.
 */
export function openidConfigurationResponse(issuer: string): HttpResponseInit {
  return {
    status: 200,
    jsonBody: {
      issuer,
      jwks_uri: `${issuer}/${IDENTITY_JWKS_ROUTE}`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      claims_supported: [...WORKLOAD_CLAIMS],
      scopes_supported: ['openid'],
    },
    headers: { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' },
  };
}

/** The timer's work: rotate unless the current key is fresh (a second instance firing is a no-op). */
export async function rotateSigningKeysNow(keys: Pick<SigningKeys<PublicJwk>, 'rotate'>, context: InvocationContext): Promise<void> {
  const outcome = await keys.rotate();
  // kids are public (they are in the JWKS); nothing else about the keys is logged.
  if (outcome.rotated) context.log(`${ROTATE_SIGNING_KEYS}: generation ${outcome.generation} (${outcome.kid}) is current; ${outcome.previousKid ?? 'no key'} retired`);
  else context.log(`${ROTATE_SIGNING_KEYS}: skipped, ${outcome.reason ?? 'nothing to do'}`);
  if (!outcome.recorded) context.warn(`${ROTATE_SIGNING_KEYS}: SigningKeyRotated could not be appended now; the next run catches up`);
}

/**
 * At start: a current key exists before the first request, so the JWKS is never `{"keys":[]}` (DESIGN §5). The
 * first key is recorded in the platform log like any rotation. A failure (storage not reachable yet) is logged,
 * not fatal: the JWKS route and the first append create the key as well.
 */
export async function ensureSigningKeysAtStart(
  keys: Pick<SigningKeys<PublicJwk>, 'ensureCurrentKey'>,
  log: { warn(text: string): void; info(text: string): void },
  ring = 'signing',
): Promise<void> {
  try {
    log.info(`${ring}: current key ${await keys.ensureCurrentKey()}`);
  } catch (error) {
    log.warn(`${ring}: no current key at start (${describeUnexpected(error)}); the first request creates it`);
  }
}

app.hook.appStart(async () => {
  const log = { warn: (t: string) => console.warn(t), info: (t: string) => console.log(t) };
  try {
    // The first key is recorded in the platform log: without the services there is no log to record it in.
    await getServices();
  } catch (error) {
    log.warn(`signing: the services could not start (${describeUnexpected(error)})`);
    return;
  }
  await ensureSigningKeysAtStart(getSigning().keys, log);
  // The workload identity ring too: a cloud that reads the JWKS before the first token finds its key (docs/identity.md).
  await ensureSigningKeysAtStart(getSigning().identityKeys, log, 'workload identity');
});

app.http(JWKS_FUNCTION, {
  route: JWKS_ROUTE,
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (_request, context) => {
    try {
      return await jwksResponse(getSigning().keys, context);
    } catch (error) {
      context.error(`${JWKS_FUNCTION}: the app could not start its services: ${describeUnexpected(error)}`);
      return problemResponse(503, 'APP.NOT_READY', 'The service is not configured correctly; see the host log.');
    }
  },
});

app.http(OPENID_CONFIGURATION_FUNCTION, {
  route: OPENID_CONFIGURATION_ROUTE,
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (_request, context) => {
    try {
      return openidConfigurationResponse(getSigning().identityTokens.issuer);
    } catch (error) {
      context.error(`${OPENID_CONFIGURATION_FUNCTION}: the app could not start its services: ${describeUnexpected(error)}`);
      return problemResponse(503, 'APP.NOT_READY', 'The service is not configured correctly; see the host log.');
    }
  },
});

app.http(IDENTITY_JWKS_FUNCTION, {
  route: IDENTITY_JWKS_ROUTE,
  methods: ['GET'],
  authLevel: 'anonymous',
  handler: async (_request, context) => {
    try {
      return await jwksResponse(getSigning().identityKeys, context, IDENTITY_JWKS_FUNCTION);
    } catch (error) {
      context.error(`${IDENTITY_JWKS_FUNCTION}: the app could not start its services: ${describeUnexpected(error)}`);
      return problemResponse(503, 'APP.NOT_READY', 'The service is not configured correctly; see the host log.');
    }
  },
});

app.timer(ROTATE_SIGNING_KEYS, {
  // Read at registration (the worker has app settings in its environment); validated with the rest at start.
  schedule: registrationSettings().schedule('SIGNING_KEY_ROTATION_SCHEDULE'),
  handler: async (_timer: Timer, context) => {
    await rotateSigningKeysNow(getSigning().keys, context);
    await rotateSigningKeysNow(getSigning().identityKeys, context);
  },
});
