import { beforeAll, expect, it } from 'vitest';
import { sandboxHostFor } from '../../../../functions/composition';
import { loadSettings } from '../../../../functions/settings';
import { DockerSandboxHost } from '../../../../infra/sandbox/docker/dockerSandboxHost';
import { describeWithDocker, dockerForTests, sandboxImageForTests } from '../../../support/dockerEngine';

/** SANDBOX_HOST chooses the host explicitly; production may use Docker; a missing image is one line at start. */
const engine = dockerForTests();
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

it('SANDBOX_HOST takes local-process or docker only, and production names the setting when it refuses the local host', async () => {
  expect(loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true' }).SANDBOX_HOST).toBe('local-process');
  expect(() => loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SANDBOX_HOST: 'kubernetes' })).toThrow(/SANDBOX_HOST/);
  expect(() => loadSettings({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', DOCKER_HOST: 'tcp://10.0.0.5:2375' })).toThrow(/DOCKER_HOST: must be unix:\/\/\/<socket path>/);
  await expect(sandboxHostFor(loadSettings(production))).rejects.toThrow(/refuses the local-process sandbox host; set SANDBOX_HOST=docker/);
});

describeWithDocker('SANDBOX_HOST=docker', engine, ({ docker, socketPath }) => {
  let image = '';
  beforeAll(async () => {
    image = await sandboxImageForTests(docker);
  });

  it('opens the Docker host, in production too', async () => {
    const host = await sandboxHostFor(loadSettings({ ...production, SANDBOX_HOST: 'docker', SANDBOX_IMAGE: image, DOCKER_HOST: `unix://${socketPath}` }));
    expect(host).toBeInstanceOf(DockerSandboxHost);
    expect(host.capabilities.isolated).toBe(true);
  });

  it('says in one line that SANDBOX_IMAGE names an image the engine does not have', async () => {
    await expect(sandboxHostFor(loadSettings({ ...production, SANDBOX_HOST: 'docker', SANDBOX_IMAGE: 'registry.example/sandbox:missing', DOCKER_HOST: `unix://${socketPath}` }))).rejects.toThrow(
      /^Docker sandbox host: image registry\.example\/sandbox:missing is missing \(run `npm run sandbox-image`, or set SANDBOX_IMAGE to an image the engine has\)$/,
    );
  });
});
