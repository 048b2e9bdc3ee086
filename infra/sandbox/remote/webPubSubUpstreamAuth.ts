import { type JSONWebKeySet, createLocalJWKSet, createRemoteJWKSet, jwtVerify } from 'jose';
import type { UpstreamVerifier } from './webPubSubHostChannel';

/**
 * Web PubSub's managed-identity upstream auth: the service sends an Entra ID token for the app's audience with
 * every upstream call. Only a token from the issuer, for the audience and (when named) of Web PubSub's own
 * identity is accepted; access keys are disabled, so there is no `ce-signature` key to check instead.
 */
export function entraUpstreamVerifier(options: { issuer: string; audience: string; jwks: string | JSONWebKeySet; principalId?: string }): UpstreamVerifier {
  const keys = typeof options.jwks === 'string' ? createRemoteJWKSet(new URL(options.jwks)) : createLocalJWKSet(options.jwks);
  return async (authorization) => {
    if (!authorization?.startsWith('Bearer ')) return false;
    try {
      const { payload } = await jwtVerify(authorization.slice('Bearer '.length), keys, { issuer: options.issuer, audience: options.audience });
      return options.principalId === undefined || payload.oid === options.principalId || payload.sub === options.principalId;
    } catch {
      return false;
    }
  };
}
