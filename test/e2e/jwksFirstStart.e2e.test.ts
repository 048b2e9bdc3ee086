import { TableClient } from '@azure/data-tables';
import { describe, expect, it } from 'vitest';
import { azuriteConnectionString } from '../support/azurite';
import { backendEnv, startBackend } from './runHarness';

describe('a fresh start of the real host', () => {
  it('has a signing key before any request, so the first JWKS fetch is never {"keys":[]}', async () => {
    const env = backendEnv();
    const host = await startBackend(env);
    try {
      // The key exists once the host says it is ready, before anything asked for it.
      const ring = await TableClient.fromConnectionString(azuriteConnectionString(), env.SIGNING_KEY_TABLE ?? '', { allowInsecureConnection: true }).getEntity('platform', 'ring');
      expect(ring).toBeDefined();
      expect(host.stdout()).toMatch(/signing: current key \S+/);
      const jwks = (await (await fetch(`${host.url}/api/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys).toHaveLength(1);
      expect(host.stdout()).toContain(jwks.keys[0]?.kid);
      // The workload identity ring (RS256) too: discovery names it, and its JWKS has a key before any token.
      const discovery = (await (await fetch(`${host.url}/api/.well-known/openid-configuration`)).json()) as { issuer: string; jwks_uri: string };
      expect(discovery.issuer).toMatch(/\/api$/);
      expect(discovery.jwks_uri).toBe(`${discovery.issuer}/.well-known/identity-jwks.json`);
      const identityJwks = (await (await fetch(`${host.url}/api/.well-known/identity-jwks.json`)).json()) as { keys: { kid: string; kty: string }[] };
      expect(identityJwks.keys).toHaveLength(1);
      expect(identityJwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256' });
      expect(host.stdout()).toContain(`workload identity: current key ${identityJwks.keys[0]?.kid}`);
      expect(identityJwks.keys[0]?.kid).not.toBe(jwks.keys[0]?.kid);
    } finally {
      await host.stop();
    }
  });
});
