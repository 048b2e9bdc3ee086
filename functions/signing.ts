import { app, type HttpResponseInit, type InvocationContext, type Timer } from '@azure/functions';
import { describeUnexpected, problemResponse } from '../infra/http/problem';
import type { SigningKeys } from '../infra/identity/signingKeys';
import { getServices, getSigning } from './composition';

/** Six-field NCRONTAB, UTC: Sundays at 03:00. Override with the app setting `SIGNING_KEY_ROTATION_SCHEDULE`. */
export const DEFAULT_ROTATION_SCHEDULE = '0 0 3 * * 0';
export const ROTATE_SIGNING_KEYS = 'rotateSigningKeys';
export const JWKS_FUNCTION = 'jwks';
/**
 * Relative to the `api` route prefix, so served at `/api/.well-known/jwks.json`. Azure Functions has one route
 * prefix for the whole app; a root `/.well-known/jwks.json` is a rewrite at the front door (docs/signing.md).
 */
export const JWKS_ROUTE = '.well-known/jwks.json';

/** `GET /.well-known/jwks.json`: public, unauthenticated; the current key and retired keys whose tokens may be live. */
export async function jwksResponse(keys: SigningKeys, context: InvocationContext): Promise<HttpResponseInit> {
  try {
    return {
      status: 200,
      jsonBody: await keys.jwks(),
      // Short enough that a verifier sees a new key soon; verifiers also refetch on an unknown kid.
      headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' },
    };
  } catch (error) {
    context.error(`${JWKS_FUNCTION} failed: ${describeUnexpected(error)}`);
    return problemResponse(503, 'SIGNING.KEYS_UNAVAILABLE', 'The signing keys could not be loaded; see the host log.');
  }
}

/** The timer's work: rotate unless the current key is fresh (a second instance firing is a no-op). */
export async function rotateSigningKeysNow(keys: SigningKeys, context: InvocationContext): Promise<void> {
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
export async function ensureSigningKeysAtStart(keys: SigningKeys, log: { warn(text: string): void; info(text: string): void }): Promise<void> {
  try {
    log.info(`signing: current key ${await keys.ensureCurrentKey()}`);
  } catch (error) {
    log.warn(`signing: no current key at start (${describeUnexpected(error)}); the first request creates it`);
  }
}

app.hook.appStart(async () => {
  const log = { warn: (t: string) => console.warn(t), info: (t: string) => console.log(t) };
  try {
    // The services wire the recorder that writes SigningKeyRotated into the platform log.
    await getServices();
  } catch (error) {
    log.warn(`signing: the services could not start (${describeUnexpected(error)})`);
    return;
  }
  await ensureSigningKeysAtStart(getSigning().keys, log);
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

app.timer(ROTATE_SIGNING_KEYS, {
  // Read at registration (the worker has app settings in its environment); validated with the rest at start.
  schedule: process.env.SIGNING_KEY_ROTATION_SCHEDULE || DEFAULT_ROTATION_SCHEDULE,
  handler: async (_timer: Timer, context) => {
    // The services wire the recorder that writes SigningKeyRotated into the platform log.
    await getServices();
    await rotateSigningKeysNow(getSigning().keys, context);
  },
});
