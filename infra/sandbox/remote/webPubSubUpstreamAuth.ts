import { type JSONWebKeySet, createLocalJWKSet, createRemoteJWKSet, jwtVerify } from 'jose';
import type { UpstreamVerifier } from './webPubSubHostChannel';

/**
 * Web PubSub's managed-identity upstream auth: the service sends an Entra ID token for the app's audience with
 * every upstream call. Only an app-only token from the issuer, for the audience and of Web PubSub's own identity
 * is accepted. The principal is required: a user's API token has the same issuer and audience, so without it any
 * caller could post `connected` and frame events as a host of any workspace. A delegated token (one with `scp`)
 * is a person acting through an app, never the service. Access keys are disabled, so there is no `ce-signature`
 * key to check instead.
 */
export function entraUpstreamVerifier(options: { issuer: string; audience: string; jwks: string | JSONWebKeySet; principalId: string }): UpstreamVerifier {
  const keys = typeof options.jwks === 'string' ? createRemoteJWKSet(new URL(options.jwks)) : createLocalJWKSet(options.jwks);
  return async (authorization) => {
    if (!authorization?.startsWith('Bearer ')) return false;
    try {
      const { payload } = await jwtVerify(authorization.slice('Bearer '.length), keys, { issuer: options.issuer, audience: options.audience });
      if (payload.scp !== undefined || (payload.idtyp !== undefined && payload.idtyp !== 'app')) return false;
      // Entra ID names the caller's object id in `oid` (an app-only token's `sub` is the same id).
      return (payload.oid ?? payload.sub) === options.principalId;
    } catch {
      return false;
    }
  };
}
