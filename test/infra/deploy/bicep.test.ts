import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSettings, settingsSchema } from '../../../functions/settings';
import { ALLOWED_BUILT_IN_ROLES, type Finding, appSettingsOf, roleGrants, securityFindings, structureFindings, vaultGroupFindings } from './bicepChecks';
import { scalar } from './bicepParser';
import { type Template, resourcesOfType, templateFromSources } from './bicepTemplate';
import { AGENT_FRAME_EVENT } from '../../../infra/sandbox/remote/webPubSubHostChannel';
import { SSH_DATA_EVENT } from '../../../infra/sandbox/remote/webPubSubSshRelay';

const ROOT = path.resolve(__dirname, '../../..');
const DEPLOY = path.join(ROOT, 'infra/deploy');

/** The real templates as an in-memory map, so each test can break one property of a copy. */
function realSources(): Record<string, string> {
  const sources: Record<string, string> = { 'main.bicep': readFileSync(path.join(DEPLOY, 'main.bicep'), 'utf8') };
  for (const f of readdirSync(path.join(DEPLOY, 'modules'))) sources[`modules/${f}`] = readFileSync(path.join(DEPLOY, 'modules', f), 'utf8');
  return sources;
}

/** A copy of the templates with one edit; the edit must apply, so a stale test cannot pass vacuously. */
function mutated(file: string, from: string, to: string): Template {
  const sources = realSources();
  const source = sources[file];
  if (source === undefined || !source.includes(from)) throw new Error(`mutation target not found in ${file}: ${from}`);
  sources[file] = source.replace(from, to);
  return templateFromSources(sources);
}

const rules = (findings: readonly Finding[]): string[] => [...new Set(findings.map((f) => f.rule))];
const real = (): Template => templateFromSources(realSources());

describe('infra/deploy Bicep: structure', () => {
  it('parses every file, reaches every module, and finds no structural problem', () => {
    const t = real();
    expect(structureFindings(t)).toEqual([]);
    expect([...t.files.keys()].sort()).toEqual(Object.keys(realSources()).sort());
  });

  it.each([
    ['an unbalanced brace', 'modules/serviceBus.bicep', "output eventsTopicName string = eventsTopic.name", '}\noutput eventsTopicName string = eventsTopic.name', 'syntax'],
    ['an unterminated string', 'modules/monitoring.bicep', "kind: 'web'", "kind: 'web", 'syntax'],
    ['a module path that does not exist', 'main.bicep', "module storage 'modules/storage.bicep'", "module storage 'modules/storag.bicep'", 'module-path'],
    ['an unused param', 'modules/monitoring.bicep', 'param location string', "param location string\nparam unusedThing string = 'x'", 'unused-param'],
    ['an unused var', 'modules/monitoring.bicep', 'param location string', "param location string\nvar spare = 1", 'unused-var'],
    ['a required module param not passed', 'main.bicep', '    retentionInDays: logRetentionInDays\n', '', 'module-params'],
    ['an unknown module param', 'main.bicep', '    retentionInDays: logRetentionInDays\n', '    retentionInDays: logRetentionInDays\n    retention: 3\n', 'module-params'],
    ['a module output that does not exist', 'main.bicep', 'appInsightsName: monitoring.outputs.appInsightsName', 'appInsightsName: monitoring.outputs.appInsightsNam', 'module-outputs'],
  ])('catches %s', (_what, file, from, to, rule) => {
    expect(rules(structureFindings(mutated(file, from, to)))).toContain(rule);
  });
});

describe('infra/deploy Bicep: security properties', () => {
  it('has no finding on the real templates', () => {
    expect(securityFindings(real())).toEqual([]);
  });

  it.each([
    ['shared key access on storage', 'modules/storage.bicep', 'allowSharedKeyAccess: false', 'allowSharedKeyAccess: true', 'storage-shared-key'],
    ['TLS below 1.2 on storage', 'modules/storage.bicep', "minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'", 'storage-tls'],
    ['HTTP allowed on storage', 'modules/storage.bicep', 'supportsHttpsTrafficOnly: true', 'supportsHttpsTrafficOnly: false', 'storage-https'],
    ['public blob access', 'modules/storage.bicep', 'allowBlobPublicAccess: false', 'allowBlobPublicAccess: true', 'storage-public-blob'],
    ['a public container', 'modules/storage.bicep', "publicAccess: 'None'", "publicAccess: 'Blob'", 'container-public'],
    ['access policies instead of RBAC', 'modules/platformVault.bicep', 'enableRbacAuthorization: true', 'enableRbacAuthorization: false', 'vault-rbac'],
    ['soft delete off', 'modules/platformVault.bicep', 'enableSoftDelete: true', 'enableSoftDelete: false', 'vault-soft-delete'],
    ['purge protection off', 'modules/platformVault.bicep', 'enablePurgeProtection: true', 'enablePurgeProtection: false', 'vault-purge-protection'],
    ['a short retention', 'modules/platformVault.bicep', 'softDeleteRetentionInDays: 90', 'softDeleteRetentionInDays: 7', 'vault-retention'],
    ['a master key that can decrypt', 'modules/platformVault.bicep', "'unwrapKey'\n    ]", "'unwrapKey'\n      'decrypt'\n    ]", 'key-ops'],
    ['SAS on Service Bus', 'modules/serviceBus.bicep', 'disableLocalAuth: true', 'disableLocalAuth: false', 'servicebus-local-auth'],
    ['TLS 1.0 on Service Bus', 'modules/serviceBus.bicep', "minimumTlsVersion: '1.2'", "minimumTlsVersion: '1.0'", 'servicebus-tls'],
    ['no dead-lettering on runs', 'modules/serviceBus.bicep', 'deadLetteringOnMessageExpiration: true', 'deadLetteringOnMessageExpiration: false', 'servicebus-dead-letter'],
    ['no events topic', 'modules/serviceBus.bicep', "name: 'events'", "name: 'evts'", 'servicebus-events'],
    ['instrumentation-key ingestion', 'modules/monitoring.bicep', 'DisableLocalAuth: true', 'DisableLocalAuth: false', 'insights-local-auth'],
    ['an app without managed identity', 'modules/functionApp.bicep', "type: 'SystemAssigned'\n", "type: 'None'\n", 'site-identity'],
    ['HTTP allowed on the app', 'modules/functionApp.bicep', 'httpsOnly: true', 'httpsOnly: false', 'site-https'],
    ['TLS 1.0 on the app', 'modules/functionApp.bicep', "      minTlsVersion: '1.2'", "      minTlsVersion: '1.0'", 'site-tls'],
    ['FTP enabled', 'modules/functionApp.bicep', "ftpsState: 'Disabled'", "ftpsState: 'AllAllowed'", 'site-ftp'],
    ['another Node version', 'modules/functionApp.bicep', "version: '22'", "version: '20'", 'site-runtime'],
    ['a keyed deployment container', 'modules/functionApp.bicep', "type: 'SystemAssignedIdentity'", "type: 'StorageAccountConnectionString'", 'site-deployment-identity'],
    ['basic auth to the SCM site', 'modules/functionApp.bicep', "name: 'scm'\n  properties: {\n    allow: false", "name: 'scm'\n  properties: {\n    allow: true", 'site-basic-auth'],
    ['a non-Flex plan', 'modules/functionApp.bicep', "name: 'FC1'", "name: 'Y1'", 'plan-flex'],
    ['a development configuration', 'modules/functionApp.bicep', "DISCO_ENV: 'production'", "DISCO_ENV: 'development'", 'setting-production'],
    ['the dev issuer', 'modules/functionApp.bicep', "AUTH_MODE: 'entra'", "AUTH_MODE: 'dev'", 'setting-auth'],
    ['no master key id', 'modules/functionApp.bicep', '  VAULT_MASTER_KEY_ID: masterKeyUri\n', '', 'setting-required'],
    ['a storage connection string setting', 'modules/functionApp.bicep', "  DISCO_ENV: 'production'\n", "  DISCO_ENV: 'production'\n  AzureWebJobsStorage: storage.name\n", 'setting-forbidden'],
    ['a setting Flex rejects', 'modules/functionApp.bicep', "  DISCO_ENV: 'production'\n", "  DISCO_ENV: 'production'\n  FUNCTIONS_WORKER_RUNTIME: 'node'\n", 'setting-forbidden'],
    ['a listKeys() call', 'modules/storage.bicep', 'output name string = storage.name', 'output name string = storage.name\noutput leaked string = storage.listKeys().keys[0].value', 'no-secrets'],
    ['an account key in a value', 'modules/functionApp.bicep', "  DISCO_ENV: 'production'\n", "  DISCO_ENV: 'production'\n  LEGACY: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=y'\n", 'no-secrets'],
    ['a @secure() input', 'modules/monitoring.bicep', 'param location string', 'param location string\n@secure()\nparam password string\noutput p string = password', 'no-secrets'],
    ['a SAS rule', 'modules/serviceBus.bicep', 'output name string', "resource sas 'Microsoft.ServiceBus/namespaces/authorizationRules@2024-01-01' = {\n  parent: namespace\n  name: 'send'\n}\n\noutput name string", 'no-secrets'],
    ['Owner instead of a data role', 'modules/platformAccess.bicep', "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.storageBlobDataOwner)", "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '8e3af657-a8ff-443c-a75c-2fe8c4bcb635')", 'role-definition'],
    ['Key Vault Administrator in the role table', 'modules/roles.bicep', "keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'", "keyVaultSecretsOfficer: '00482a5a-887f-4fb3-b363-3b7fe8e74483'", 'role-definition'],
    ['a role for someone other than the app', 'main.bicep', '    appPrincipalId: app.outputs.principalId\n    storageAccountName', "    appPrincipalId: '11111111-2222-3333-4444-555555555555'\n    storageAccountName", 'role-principal'],
    ['a user principal type', 'modules/workspaceVaultAccess.bicep', "principalType: 'ServicePrincipal'", "principalType: 'User'", 'role-principal-type'],
    ['a custom role that may assign roles', 'main.bicep', "'Microsoft.KeyVault/vaults/delete'", "'Microsoft.KeyVault/vaults/delete'\n          'Microsoft.Authorization/roleAssignments/write'", 'custom-role-actions'],
    ['a wildcard custom role', 'main.bicep', "'Microsoft.KeyVault/vaults/delete'", "'Microsoft.KeyVault/*'", 'custom-role-actions'],
    ['a custom role that may purge', 'main.bicep', "'Microsoft.KeyVault/deletedVaults/read'", "'Microsoft.KeyVault/locations/deletedVaults/purge/action'", 'custom-role-actions'],
  ])('catches %s', (_what, file, from, to, rule) => {
    expect(rules(securityFindings(mutated(file, from, to)))).toContain(rule);
  });

  it('ignores forbidden words in comments, so explanations stay possible', () => {
    const t = mutated('modules/storage.bicep', 'param location string', '// never call listKeys() or put an AccountKey= here\nparam location string');
    expect(securityFindings(t)).toEqual([]);
  });
});

describe('infra/deploy Bicep: roles', () => {
  it('names each built-in role id in roles.bicep exactly as the allow-list does, and uses only those', () => {
    const source = realSources()['modules/roles.bicep'] ?? '';
    const rows = [...source.matchAll(/^\s*\w+: '([0-9a-f-]{36})' \/\/ (.+)$/gm)].map((m) => [m[1], m[2]?.trim()]);
    expect(Object.fromEntries(rows)).toEqual(ALLOWED_BUILT_IN_ROLES);
  });

  it('grants the app exactly these roles at these scopes, each to its own managed identity', () => {
    const grants = roleGrants(real()).map((g) => `${g.role} @ ${g.scopeType}`).sort();
    expect(grants).toEqual(
      [
        'Storage Blob Data Owner @ Microsoft.Storage/storageAccounts',
        'Storage Queue Data Contributor @ Microsoft.Storage/storageAccounts',
        'Storage Table Data Contributor @ Microsoft.Storage/storageAccounts',
        'Key Vault Crypto Service Encryption User @ Microsoft.KeyVault/vaults/keys',
        'Key Vault Secrets Officer @ resourceGroup',
        'Azure Service Bus Data Sender @ Microsoft.ServiceBus/namespaces',
        'Azure Service Bus Data Receiver @ Microsoft.ServiceBus/namespaces',
        'Monitoring Metrics Publisher @ Microsoft.Insights/components',
        'Web PubSub Service Owner @ Microsoft.SignalRService/webPubSub',
        'custom:vaultProvisionerRole @ resourceGroup',
        'custom:deletedVaultReaderRole @ subscription',
      ].sort(),
    );
  });
});

describe('infra/deploy Bicep: workspace-vault resource groups (sharding)', () => {
  it('creates one group per name, gives the app both group-level roles in each, and tells the app every group', () => {
    const t = real();
    expect(vaultGroupFindings(t)).toEqual([]);
    const main = t.files.get('main.bicep');
    const groups = main?.declarations.find((d) => d.name === 'vaultsGroups');
    expect(groups?.loop).toBe('name in workspaceVaultsGroupNames');
    const names = main?.declarations.find((d) => d.name === 'workspaceVaultsGroupNames');
    // The first group keeps the name it had before sharding (vaults recorded without a group live there).
    expect(names?.value?.kind === 'expr' ? names.value.text.replace(/\s+/g, '') : '').toBe(
      "[fori inrange(0,workspaceVaultsGroupCount):i==0?workspaceVaultsResourceGroupName:'${workspaceVaultsResourceGroupName}-${padLeft(i, 2, '0')}']".replace(/\s+/g, ''),
    );
    const perGroup = main?.declarations.find((d) => d.name === 'workspaceVaultsPerGroup');
    expect(perGroup?.decorators).toEqual(expect.arrayContaining(['@ maxValue ( 800 )']));
    const inEachGroup = roleGrants(t).filter((g) => g.where.startsWith('modules/workspaceVaultAccess.bicep')).map((g) => g.role).sort();
    expect(inEachGroup).toEqual(['Key Vault Secrets Officer', 'custom:vaultProvisionerRole']);
  });

  it.each([
    ['access granted in one group only', "in workspaceVaultsGroupNames: {\n  name: 'workspaceVaultAccess", "in take(workspaceVaultsGroupNames, 1): {\n  name: 'workspaceVaultAccess"],
    ['every copy of the access aimed at the first group', 'scope: vaultsGroups[i]', 'scope: vaultsGroups[0]'],
    ['groups made from another list than the access', 'resource vaultsGroups \'Microsoft.Resources/resourceGroups@2024-03-01\' = [for name in workspaceVaultsGroupNames', 'resource vaultsGroups \'Microsoft.Resources/resourceGroups@2024-03-01\' = [for name in take(workspaceVaultsGroupNames, 1)'],
    ['the provisioner role assignable in the first group only', 'assignableScopes: [for (name, i) in workspaceVaultsGroupNames: vaultsGroups[i].id]', 'assignableScopes: [\n      vaultsGroups[0].id\n    ]'],
    ['the app told only the first group', "workspaceVaultsResourceGroupNames: join(workspaceVaultsGroupNames, ',')", 'workspaceVaultsResourceGroupNames: vaultsGroups[0].name'],
    ['the default group not the first one', 'workspaceVaultsResourceGroupName: vaultsGroups[0].name', 'workspaceVaultsResourceGroupName: vaultsGroups[1].name'],
  ])('catches %s', (_what, from, to) => {
    const findings = vaultGroupFindings(mutated('main.bicep', from, to));
    expect(rules(findings)).toEqual(['vault-groups']);
    expect(securityFindings(mutated('main.bicep', from, to)).map((f) => f.rule)).toContain('vault-groups');
  });
});

/** Values for settings the template computes at deploy time, shaped as Azure produces them. */
const DEPLOY_TIME_SAMPLES: Readonly<Record<string, string>> = {
  AzureWebJobsStorage__accountName: 'stdpprodabc123def456',
  ServiceBusConnection__fullyQualifiedNamespace: 'sb-discoparrot-prod-abc.servicebus.windows.net',
  APPLICATIONINSIGHTS_CONNECTION_STRING: 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/',
  AUTH_ISSUER: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0',
  AUTH_JWKS_URL: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/discovery/v2.0/keys',
  AUTH_AUDIENCE: 'api://disco-parrot',
  VAULT_MASTER_KEY_ID: 'https://kv-dp-prod-abc.vault.azure.net/keys/vault-master',
  DURABLE_TASK_HUB: 'discoparrotprod',
  EVENT_LOG_TABLE: 'eventlog',
  VAULT_TABLE: 'vault',
  RESOLVER_CACHE_SECONDS: '30',
  GATEWAY_BEARER_TABLE: 'gatewaybearers',
  GATEWAY_OPERATION_TIMEOUT_SECONDS: '120',
  GATEWAY_URL: 'https://func-discoparrot-prod-abc.azurewebsites.net/api/gateway/operations',
  SIGNING_KEY_TABLE: 'signingkeys',
  SIGNING_KEY_ROTATION_SCHEDULE: '0 0 3 * * 0',
  PLATFORM_ISSUER: 'https://func-discoparrot-prod-abc.azurewebsites.net',
  IDENTITY_ISSUER: 'https://func-discoparrot-prod-abc.azurewebsites.net/api',
  SANDBOX_TOKEN_AUDIENCE: 'disco-parrot-sandbox',
  SANDBOX_TOKEN_MINUTES: '15',
  SWEEP_SCHEDULE: '0 */1 * * * *',
  EVENTS_TOPIC: 'events',
  HOST_CHANNEL_PUBSUB_ENDPOINT: 'https://wps-discoparrot-prod-abc.webpubsub.azure.com',
  HOST_CHANNEL_PUBSUB_PRINCIPAL_ID: '00000000-0000-4000-8000-00000000a11e',
  RUN_REQUEST_TABLE: 'runrequests',
  OUTBOX_INDEX_TABLE: 'outboxpending',
  OUTBOX_SCHEDULE: '*/5 * * * * *',
  OUTBOX_MARKER_GRACE_SECONDS: '600',
  BACKUP_CONTAINER: 'auditarchive',
  WORKSPACE_VAULTS_SUBSCRIPTION_ID: '00000000-0000-4000-8000-000000000001',
  WORKSPACE_VAULTS_RESOURCE_GROUP: 'rg-discoparrot-prod-vaults',
  WORKSPACE_VAULTS_RESOURCE_GROUPS: 'rg-discoparrot-prod-vaults,rg-discoparrot-prod-vaults-01',
  WORKSPACE_VAULTS_PER_GROUP: '700',
  WORKSPACE_VAULTS_LOCATION: 'westeurope',
  AZURE_TENANT_ID: '00000000-0000-4000-8000-000000000002',
};

function productionEnv(t: Template): Record<string, string> {
  const site = resourcesOfType(t, 'Microsoft.Web/sites')[0];
  const settings = site ? appSettingsOf(site.file, site.decl.value) : undefined;
  if (!settings) throw new Error('no app settings found');
  const env: Record<string, string> = {};
  for (const [name, value] of settings) {
    const literal = value.kind === 'string' ? value.value : undefined;
    const sample = DEPLOY_TIME_SAMPLES[name];
    if (literal === undefined && sample === undefined) throw new Error(`no deploy-time sample for ${name} (${scalar(value)})`);
    env[name] = literal ?? (sample as string);
  }
  return env;
}

describe('infra/deploy Bicep: app settings against functions/settings.ts', () => {
  /** Settings the production app must not have: each is a local-only fallback. */
  const LOCAL_ONLY = ['AzureWebJobsStorage', 'VAULT_MASTER_KEY_FILE', 'RUN_PRODUCER_KEY_DIR', 'SANDBOX_EGRESS_TEST_SERVERS', 'SANDBOX_PIDS_MAX', 'SANDBOX_MEMORY_MB', 'SANDBOX_CPUS', 'HOST_CHANNEL_PORT', 'HOST_CHANNEL_TLS_DIR'];
  /**
   * Set by the operator once a producer exists, not by the template: the producers' public keys are theirs to
   * register. Unset, every queued run request is refused (poisoned as from an untrusted producer).
   */
  const OPERATOR_SET = [
    'RUN_PRODUCER_KEYS',
    // Where a Docker engine runs beside the backend (a Function App has none; the Bicep chooses the remote host):
    // set there by the operator (docs/sandbox-hosts.md).
    'SANDBOX_IMAGE', 'DOCKER_HOST', 'SANDBOX_WORKSPACE_MB', 'SANDBOX_USERNS_BASE',
    // The managed pool's machines are the operator's to create; their identities are listed once they exist.
    'MANAGED_POOL_PRINCIPAL_IDS',
  ];

  it('sets every setting the app validates, except the local-only ones and those the operator registers', () => {
    const env = productionEnv(real());
    for (const name of Object.keys(settingsSchema.shape)) {
      if (OPERATOR_SET.includes(name)) continue;
      if (LOCAL_ONLY.includes(name)) expect(env, name).not.toHaveProperty(name);
      else expect(env, name).toHaveProperty(name);
    }
  });

  it('passes the app\'s own production validation', () => {
    const settings = loadSettings(productionEnv(real()));
    expect(settings.DISCO_ENV).toBe('production');
    expect(settings.AUTH_MODE).toBe('entra');
    expect(settings.AzureWebJobsStorage).toBeUndefined();
  });

  /** The deploy-time samples above are https; this keeps the template's own expressions honest about it. */
  function publicUrls(t: Template): { gateway: string | undefined; issuer: string | undefined } {
    const site = resourcesOfType(t, 'Microsoft.Web/sites')[0];
    const settings = site ? appSettingsOf(site.file, site.decl.value) : undefined;
    const issuerRef = scalar(settings?.get('PLATFORM_ISSUER'));
    const issuerVar = site?.file.declarations.find((d) => d.keyword === 'var' && d.name === issuerRef);
    return { gateway: scalar(settings?.get('GATEWAY_URL')), issuer: scalar(issuerVar?.value) };
  }

  it('gives the agent an https gateway URL and tokens an https default issuer', () => {
    const { gateway, issuer } = publicUrls(real());
    expect(gateway).toMatch(/^'https:\/\/\$\{\w+\}\/api\/gateway\/operations'$/);
    expect(issuer).toContain("'https://${defaultHostName}'");
    const downgraded = mutated('modules/functionApp.bicep', "'https://${defaultHostName}/api/gateway/operations'", "'http://${defaultHostName}/api/gateway/operations'");
    expect(publicUrls(downgraded).gateway).not.toMatch(/^'https:/);
  });

  it('would be refused by the app without the master key id', () => {
    const t = mutated('modules/functionApp.bicep', '  VAULT_MASTER_KEY_ID: masterKeyUri\n', '');
    expect(() => loadSettings(productionEnv(t))).toThrow(/VAULT_MASTER_KEY_ID/);
  });
});

describe('infra/deploy: the host channel (Web PubSub)', () => {
  it('has no access keys, and only the app holds a role on it', () => {
    const pubsub = readFileSync(path.join(DEPLOY, 'modules', 'webPubSub.bicep'), 'utf8');
    expect(pubsub).toContain('disableLocalAuth: true');
    expect(pubsub).toContain('disableAadAuth: false');
    expect(pubsub).not.toMatch(/listKeys|primaryKey|connectionString/i);
    const access = readFileSync(path.join(DEPLOY, 'modules', 'webPubSubAccess.bicep'), 'utf8');
    expect(access.match(/roleAssignments@/g)).toHaveLength(1);
    expect(access).toContain('principalId: appPrincipalId');
    // Upstream calls reach the app's event route with Web PubSub's managed identity, never a key.
    expect(access).toContain("urlTemplate: 'https://${appHostName}/api/hosts/events'");
    expect(access).toContain("type: 'ManagedIdentity'");
    expect(pubsub).toContain("type: 'SystemAssigned'");
  });

  it('posts every user event the app serves: the agents\' frames and the IDE proxies\' SSH bytes', () => {
    const access = readFileSync(path.join(DEPLOY, 'modules', 'webPubSubAccess.bicep'), 'utf8');
    const pattern = /userEventPattern: '([^']*)'/.exec(access)?.[1]?.split(',').map((e) => e.trim()) ?? [];
    expect(pattern).toEqual(expect.arrayContaining([AGENT_FRAME_EVENT, SSH_DATA_EVENT]));
  });
});

describe('infra/deploy: parameters and docs', () => {
  it('main.parameters.json sets only params main.bicep declares, and every param without a default', () => {
    const t = real();
    const main = t.files.get('main.bicep');
    const params = main?.declarations.filter((d) => d.keyword === 'param') ?? [];
    const file = JSON.parse(readFileSync(path.join(DEPLOY, 'main.parameters.json'), 'utf8')) as { parameters: Record<string, unknown> };
    const given = Object.keys(file.parameters);
    for (const name of given) expect(params.map((p) => p.name)).toContain(name);
    for (const p of params.filter((d) => !d.value)) expect(given).toContain(p.name);
  });

  it('docs/deploy.md explains every setting of settings.ts, the sample file and the template', () => {
    const doc = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
    const sample = JSON.parse(readFileSync(path.join(ROOT, 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> };
    const names = new Set([...Object.keys(settingsSchema.shape), ...Object.keys(sample.Values), ...Object.keys(productionEnv(real()))]);
    const undocumented = [...names].filter((n) => !doc.includes(`\`${n}\``));
    expect(undocumented).toEqual([]);
  });
});
