import { describe, expect, it } from 'vitest';
import { sandboxHostFor } from '../../functions/composition';
import { loadSettings } from '../../functions/settings';

const production = {
  DISCO_ENV: 'production',
  AzureWebJobsStorage__accountName: 'discoparrotprod',
  AUTH_MODE: 'entra',
  AUTH_ISSUER: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0',
  AUTH_JWKS_URL: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys',
  VAULT_MASTER_KEY_ID: 'https://kv.vault.azure.net/keys/master/0123',
  PLATFORM_ISSUER: 'https://discoparrot.example.com',
};

describe('the production configuration', () => {
  it('refuses the local-process sandbox host, by name', async () => {
    await expect(sandboxHostFor(loadSettings(production))).rejects.toThrow(/refuses the local-process sandbox host/);
  });

  it('refuses connection strings, the dev issuer and a local master key, naming each setting', () => {
    expect(() => loadSettings({ ...production, AzureWebJobsStorage: 'UseDevelopmentStorage=true' })).toThrow(/AzureWebJobsStorage/);
    expect(() => loadSettings({ ...production, AUTH_MODE: 'dev' })).toThrow(/AUTH_MODE/);
    const { VAULT_MASTER_KEY_ID: _dropped, ...noMasterKey } = production;
    expect(() => loadSettings(noMasterKey)).toThrow(/VAULT_MASTER_KEY_ID/);
  });

  it('refuses loopback test servers on the sandboxes\' egress path; development takes only 127.0.0.1/localhost ports', () => {
    expect(() => loadSettings({ ...production, SANDBOX_EGRESS_TEST_SERVERS: '127.0.0.1:4873' })).toThrow(/SANDBOX_EGRESS_TEST_SERVERS: production refuses/);
    const dev = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };
    expect(loadSettings({ ...dev, SANDBOX_EGRESS_TEST_SERVERS: '127.0.0.1:4873,localhost:9' }).SANDBOX_EGRESS_TEST_SERVERS).toBe('127.0.0.1:4873,localhost:9');
    for (const bad of ['10.0.0.5:443', '169.254.169.254:80', '127.0.0.1', 'example.com:443']) expect(() => loadSettings({ ...dev, SANDBOX_EGRESS_TEST_SERVERS: bad }), bad).toThrow(/SANDBOX_EGRESS_TEST_SERVERS/);
  });

  it('a development configuration opens the local host', async () => {
    const host = await sandboxHostFor(loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }));
    expect(typeof host.capabilities.isolated).toBe('boolean');
  });
});
