import { describe, expect, it } from 'vitest';
import { TableClient } from '@azure/data-tables';
import { DefaultAzureCredential } from '@azure/identity';
import { keyVaultOptions, sandboxHostFor, workspaceVault } from '../../functions/composition';
import { EncryptedTableVault } from '../../infra/vault/encryptedTableVault';
import { KeyVaultSecretVault } from '../../infra/vault/keyVaultSecretVault';
import { loadSettings } from '../../functions/settings';
import type { VaultDirectory } from '../../domain/ports/vaultDirectory';
import type { ApiServices } from '../../functions/http/apiRoute';
import { webPubSubChannel } from '../../functions/webPubSubHosts.composition';
import { hostChannelControl } from '../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../infra/sandbox/remote/remoteSandboxHost';
import { WebPubSubHostChannel } from '../../infra/sandbox/remote/webPubSubHostChannel';

const production = {
  DISCO_ENV: 'production',
  AzureWebJobsStorage__accountName: 'discoparrotprod',
  AUTH_MODE: 'entra',
  AUTH_ISSUER: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0',
  AUTH_JWKS_URL: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys',
  VAULT_MASTER_KEY_ID: 'https://kv.vault.azure.net/keys/master/0123',
  PLATFORM_ISSUER: 'https://discoparrot.example.com',
  VAULT_KIND: 'keyvault',
  WORKSPACE_VAULTS_SUBSCRIPTION_ID: '00000000-0000-4000-8000-000000000001',
  WORKSPACE_VAULTS_RESOURCE_GROUP: 'rg-discoparrot-prod-vaults',
  WORKSPACE_VAULTS_LOCATION: 'westeurope',
  AZURE_TENANT_ID: '00000000-0000-4000-8000-000000000002',
};

// Never called: the adapters are only constructed.
const vaultTable = new TableClient('https://discoparrotprod.table.core.windows.net', 'vault', new DefaultAzureCredential());
/** Never read here: building the adapter touches neither the log nor Azure. */
const directory: VaultDirectory = { read: async () => ({}), claim: async (_ws, proposed) => proposed, replace: async (_ws, _taken, proposed) => proposed };

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

  it('builds the per-workspace Key Vault adapter, reached with DefaultAzureCredential', () => {
    const settings = loadSettings(production);
    const vault = workspaceVault(settings, vaultTable, directory);
    expect(vault).toBeInstanceOf(KeyVaultSecretVault);
    expect(keyVaultOptions(settings, directory)).toMatchObject({
      directory,
      credential: expect.any(DefaultAzureCredential),
      subscriptionId: production.WORKSPACE_VAULTS_SUBSCRIPTION_ID,
      resourceGroup: production.WORKSPACE_VAULTS_RESOURCE_GROUP,
      location: 'westeurope',
      tenantId: production.AZURE_TENANT_ID,
      resourceGroups: [production.WORKSPACE_VAULTS_RESOURCE_GROUP],
      vaultsPerGroup: 700,
    });
  });

  it('shards vaults over WORKSPACE_VAULTS_RESOURCE_GROUPS, which must include the default group and name none twice', () => {
    const groups = 'rg-discoparrot-prod-vaults,rg-discoparrot-prod-vaults-01,rg-discoparrot-prod-vaults-02';
    const settings = loadSettings({ ...production, WORKSPACE_VAULTS_RESOURCE_GROUPS: groups, WORKSPACE_VAULTS_PER_GROUP: '500' });
    expect(keyVaultOptions(settings, directory)).toMatchObject({ resourceGroup: production.WORKSPACE_VAULTS_RESOURCE_GROUP, resourceGroups: groups.split(','), vaultsPerGroup: 500 });
    expect(() => loadSettings({ ...production, WORKSPACE_VAULTS_RESOURCE_GROUPS: 'rg-a,rg-b' })).toThrow(/WORKSPACE_VAULTS_RESOURCE_GROUPS: must include WORKSPACE_VAULTS_RESOURCE_GROUP/);
    expect(() => loadSettings({ ...production, WORKSPACE_VAULTS_RESOURCE_GROUPS: `${groups},rg-discoparrot-prod-vaults` })).toThrow(/must not name a group twice/);
    expect(() => loadSettings({ ...production, WORKSPACE_VAULTS_PER_GROUP: '801' })).toThrow(/WORKSPACE_VAULTS_PER_GROUP/);
  });

  it('refuses the shared Table vault unless a single-tenant install says so, and keyvault without its settings', () => {
    expect(() => loadSettings({ ...production, VAULT_KIND: 'table' })).toThrow(/VAULT_KIND: production keeps each workspace in its own Key Vault/);
    const singleTenant = loadSettings({ ...production, VAULT_KIND: 'table', VAULT_SINGLE_TENANT: 'true' });
    expect(workspaceVault(singleTenant, vaultTable, directory)).toBeInstanceOf(EncryptedTableVault);
    const { WORKSPACE_VAULTS_RESOURCE_GROUP: _rg, AZURE_TENANT_ID: _tenant, ...missing } = production;
    expect(() => loadSettings(missing)).toThrow(/WORKSPACE_VAULTS_RESOURCE_GROUP: VAULT_KIND=keyvault needs it[\s\S]*AZURE_TENANT_ID/);
  });

  it('a development configuration uses the encrypted Table vault', () => {
    expect(loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }).VAULT_KIND).toBe('table');
  });

  it('refuses loopback test servers on the sandboxes\' egress path; development takes only 127.0.0.1/localhost ports', () => {
    expect(() => loadSettings({ ...production, SANDBOX_EGRESS_TEST_SERVERS: '127.0.0.1:4873' })).toThrow(/SANDBOX_EGRESS_TEST_SERVERS: production refuses/);
    const dev = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };
    expect(loadSettings({ ...dev, SANDBOX_EGRESS_TEST_SERVERS: '127.0.0.1:4873,localhost:9' }).SANDBOX_EGRESS_TEST_SERVERS).toBe('127.0.0.1:4873,localhost:9');
    for (const bad of ['10.0.0.5:443', '169.254.169.254:80', '127.0.0.1', 'example.com:443']) expect(() => loadSettings({ ...dev, SANDBOX_EGRESS_TEST_SERVERS: bad }), bad).toThrow(/SANDBOX_EGRESS_TEST_SERVERS/);
  });

  it('SANDBOX_HOST=remote opens the Web PubSub channel when its endpoint is set, and refuses clearly without it', async () => {
    // Never read: opening the channel constructs its clients and touches neither the log nor Azure.
    const services = async (): Promise<ApiServices> => ({ deps: {}, authenticator: {}, records: {} }) as unknown as ApiServices;
    const remote = { ...production, SANDBOX_HOST: 'remote' };
    await expect(sandboxHostFor(loadSettings(remote), services)).rejects.toThrow(/SANDBOX_HOST=remote in production needs HOST_CHANNEL_PUBSUB_ENDPOINT/);
    // Without Web PubSub's principal any user's API token (same issuer and audience) would pass for its upstream token.
    await expect(sandboxHostFor(loadSettings({ ...remote, HOST_CHANNEL_PUBSUB_ENDPOINT: 'https://wps-discoparrot-prod.webpubsub.azure.com' }), services))
      .rejects.toThrow(/needs HOST_CHANNEL_PUBSUB_PRINCIPAL_ID/);
    try {
      const host = await sandboxHostFor(loadSettings({
        ...remote, HOST_CHANNEL_PUBSUB_ENDPOINT: 'https://wps-discoparrot-prod.webpubsub.azure.com', HOST_CHANNEL_PUBSUB_PRINCIPAL_ID: '00000000-0000-4000-8000-00000000a11e',
      }), services);
      expect(host).toBeInstanceOf(RemoteSandboxHost);
      expect(webPubSubChannel.get()?.channel).toBeInstanceOf(WebPubSubHostChannel);
      expect(hostChannelControl.get()).toBe(webPubSubChannel.get()?.channel);
    } finally {
      webPubSubChannel.set(undefined);
      hostChannelControl.set(undefined);
    }
  });

  it('a development configuration opens the local host', async () => {
    const host = await sandboxHostFor(loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }));
    expect(typeof host.capabilities.isolated).toBe('boolean');
  });
});
