import type { BicepFile, BicepValue, Declaration } from './bicepParser';
import { at, scalar } from './bicepParser';
import {
  type Template,
  callSites,
  codeText,
  declarationsOf,
  modulePath,
  resolve,
  resourceType,
  resourcesOfType,
  walkValues,
} from './bicepTemplate';

/** One problem the checks found; `rule` is stable so tests can assert which check fired. */
export interface Finding {
  readonly rule: string;
  readonly where: string;
  readonly message: string;
}

/** The only built-in roles the app's identity may hold, by the names Azure gives them. */
export const ALLOWED_BUILT_IN_ROLES: Readonly<Record<string, string>> = {
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b': 'Storage Blob Data Owner',
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88': 'Storage Queue Data Contributor',
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3': 'Storage Table Data Contributor',
  'e147488a-f6f5-4113-8e2d-b22465e65bf6': 'Key Vault Crypto Service Encryption User',
  'b86a8fe4-44ce-4948-aee5-eccb2c155cd7': 'Key Vault Secrets Officer',
  '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39': 'Azure Service Bus Data Sender',
  '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0': 'Azure Service Bus Data Receiver',
  '3913510d-42f4-4e42-8a64-420c390055eb': 'Monitoring Metrics Publisher',
  '12cf5a90-567b-43ae-8102-96cf46c7d9b4': 'Web PubSub Service Owner',
};

/** App settings Flex Consumption rejects (they live in functionAppConfig or do not apply). */
const FLEX_REJECTED_SETTINGS = [
  'FUNCTIONS_WORKER_RUNTIME',
  'FUNCTIONS_EXTENSION_VERSION',
  'WEBSITE_RUN_FROM_PACKAGE',
  'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING',
  'WEBSITE_CONTENTSHARE',
  'WEBSITE_NODE_DEFAULT_VERSION',
];

const FORBIDDEN_TEXT: readonly [RegExp, string][] = [
  [/\blist[A-Za-z]*\s*\(/i, 'a list*() call reads keys or connection strings at deploy time'],
  [/AccountKey\s*=/i, 'a storage account key'],
  [/SharedAccess(Key|Signature)/i, 'a SAS key or signature'],
  [/DefaultEndpointsProtocol/i, 'a storage connection string'],
  [/\b(primary|secondary)(Key|ConnectionString|MasterKey)\b/i, 'a resource key property'],
  [/InstrumentationKey/i, 'an instrumentation key (use the connection string with Entra auth)'],
  [/StorageAccountConnectionString/, 'connection-string authentication for the deployment container'],
  [/@ secure\b/, 'a @secure() parameter: nothing secret should be an input'],
  [/authorizationRules/i, 'a SAS authorization rule'],
  [/\baccessPolicies\s*:|vaults\/accessPolicies@/, 'Key Vault access policies (the vaults use RBAC)'],
];

export function structureFindings(t: Template): Finding[] {
  const out: Finding[] = [];
  for (const e of t.syntaxErrors) out.push({ rule: 'syntax', where: e.split(': ')[0] ?? '', message: e });
  for (const m of t.missing) out.push({ rule: 'module-path', where: `${m.from}:${m.line}`, message: `${m.path} does not exist` });
  for (const file of t.files.values()) {
    for (const d of file.declarations) {
      const exported = d.decorators.some((x) => /^@ export\b/.test(x));
      if ((d.keyword === 'param' || d.keyword === 'var') && !exported && !file.usedIdentifiers.has(d.name))
        out.push({ rule: `unused-${d.keyword}`, where: `${file.path}:${d.line}`, message: `${d.keyword} ${d.name} is never used` });
      if (d.keyword === 'module') out.push(...moduleCallFindings(t, file, d));
    }
    if (file.path !== t.entry && callSites(t, file).length === 0 && declarationsOf(file, 'param').length > 0)
      out.push({ rule: 'orphan-module', where: file.path, message: 'no module declaration deploys this file' });
  }
  return out;
}

function moduleCallFindings(t: Template, caller: BicepFile, call: Declaration): Finding[] {
  const target = t.files.get(modulePath(caller, call));
  if (!target) return [];
  const where = `${caller.path}:${call.line}`;
  const given = at(call.value, 'params');
  const givenNames = given?.kind === 'object' ? [...given.entries.keys()] : [];
  const params = declarationsOf(target, 'param');
  const out: Finding[] = [];
  for (const p of params)
    if (!p.value && !givenNames.includes(p.name))
      out.push({ rule: 'module-params', where, message: `module ${call.name} does not pass required param ${p.name}` });
  for (const name of givenNames)
    if (!params.some((p) => p.name === name)) out.push({ rule: 'module-params', where, message: `module ${call.name} passes unknown param ${name}` });
  for (const d of caller.declarations)
    walkValues(d.value, (v) => {
      if (v.kind !== 'expr') return;
      for (const m of v.text.matchAll(new RegExp(`\\b${call.name}\\.outputs\\.([A-Za-z_][A-Za-z0-9_]*)`, 'g')))
        if (!declarationsOf(target, 'output').some((o) => o.name === m[1]))
          out.push({ rule: 'module-outputs', where: `${caller.path}:${v.line}`, message: `${call.name} has no output ${m[1]}` });
    });
  return out;
}

function expect(out: Finding[], rule: string, where: string, actual: BicepValue | undefined, wanted: string, what: string): void {
  const value = scalar(actual);
  if (value !== wanted) out.push({ rule, where, message: `${what} must be ${wanted}, is ${value ?? 'unset'}` });
}

function each(t: Template, type: string, check: (v: BicepValue | undefined, where: string, d: Declaration, f: BicepFile) => void): number {
  const found = resourcesOfType(t, type);
  for (const { file, decl } of found) check(decl.value, `${file.path}:${decl.line} ${decl.name}`, decl, file);
  return found.length;
}

export function securityFindings(t: Template): Finding[] {
  const out: Finding[] = [];
  const need = (type: string, count: number): void => {
    if (count === 0) out.push({ rule: 'missing-resource', where: t.entry, message: `no ${type} is declared` });
  };
  need('storage account', each(t, 'Microsoft.Storage/storageAccounts', (v, w) => {
    expect(out, 'storage-shared-key', w, at(v, 'properties.allowSharedKeyAccess'), 'false', 'allowSharedKeyAccess');
    expect(out, 'storage-tls', w, at(v, 'properties.minimumTlsVersion'), 'TLS1_2', 'minimumTlsVersion');
    expect(out, 'storage-https', w, at(v, 'properties.supportsHttpsTrafficOnly'), 'true', 'supportsHttpsTrafficOnly');
    expect(out, 'storage-public-blob', w, at(v, 'properties.allowBlobPublicAccess'), 'false', 'allowBlobPublicAccess');
  }));
  each(t, 'Microsoft.Storage/storageAccounts/blobServices/containers', (v, w) =>
    expect(out, 'container-public', w, at(v, 'properties.publicAccess'), 'None', 'publicAccess'),
  );
  need('Key Vault', each(t, 'Microsoft.KeyVault/vaults', (v, w) => {
    expect(out, 'vault-rbac', w, at(v, 'properties.enableRbacAuthorization'), 'true', 'enableRbacAuthorization');
    expect(out, 'vault-soft-delete', w, at(v, 'properties.enableSoftDelete'), 'true', 'enableSoftDelete');
    expect(out, 'vault-purge-protection', w, at(v, 'properties.enablePurgeProtection'), 'true', 'enablePurgeProtection');
    expect(out, 'vault-retention', w, at(v, 'properties.softDeleteRetentionInDays'), '90', 'softDeleteRetentionInDays');
  }));
  need('master key', each(t, 'Microsoft.KeyVault/vaults/keys', (v, w) => {
    const ops = at(v, 'properties.keyOps');
    const list = ops?.kind === 'array' ? ops.items.map(scalar) : [];
    if (list.length === 0 || list.some((op) => op !== 'wrapKey' && op !== 'unwrapKey'))
      out.push({ rule: 'key-ops', where: w, message: `keyOps must be wrapKey/unwrapKey only, is ${JSON.stringify(list)}` });
  }));
  need('Service Bus namespace', each(t, 'Microsoft.ServiceBus/namespaces', (v, w) => {
    expect(out, 'servicebus-local-auth', w, at(v, 'properties.disableLocalAuth'), 'true', 'disableLocalAuth');
    expect(out, 'servicebus-tls', w, at(v, 'properties.minimumTlsVersion'), '1.2', 'minimumTlsVersion');
  }));
  const queues = resourcesOfType(t, 'Microsoft.ServiceBus/namespaces/queues').filter((q) => scalar(at(q.decl.value, 'name')) === 'runs');
  if (queues.length !== 1) out.push({ rule: 'servicebus-runs', where: t.entry, message: 'exactly one queue named runs is needed' });
  for (const q of queues)
    expect(out, 'servicebus-dead-letter', q.decl.name, at(q.decl.value, 'properties.deadLetteringOnMessageExpiration'), 'true', 'deadLetteringOnMessageExpiration');
  if (!resourcesOfType(t, 'Microsoft.ServiceBus/namespaces/topics').some((x) => scalar(at(x.decl.value, 'name')) === 'events'))
    out.push({ rule: 'servicebus-events', where: t.entry, message: 'a topic named events is needed' });
  const components = resourcesOfType(t, 'Microsoft.Insights/components');
  for (const c of components)
    expect(out, 'insights-local-auth', c.decl.name, at(c.decl.value, 'properties.DisableLocalAuth'), 'true', 'DisableLocalAuth');
  need('Function App', each(t, 'Microsoft.Web/sites', (v, w, d, f) => out.push(...siteFindings(f, d, v, w))));
  each(t, 'Microsoft.Web/serverfarms', (v, w) => {
    expect(out, 'plan-flex', w, at(v, 'sku.name'), 'FC1', 'sku.name');
    expect(out, 'plan-flex', w, at(v, 'sku.tier'), 'FlexConsumption', 'sku.tier');
  });
  for (const [file, source] of t.sources) {
    const code = codeText(source);
    for (const [pattern, what] of FORBIDDEN_TEXT) if (pattern.test(code)) out.push({ rule: 'no-secrets', where: file, message: `found ${what}` });
  }
  out.push(...roleFindings(t));
  out.push(...vaultGroupFindings(t));
  return out;
}

const compact = (text: string | undefined): string => (text ?? '').replace(/\s+/g, '');

/**
 * The workspace-vault groups (docs/vault.md): one list of group names drives the groups themselves, the app's two
 * group-level role assignments in each (the workspaceVaultAccess module, deployed once per group), the groups
 * the provisioner role may be assigned in, and the app's WORKSPACE_VAULTS_RESOURCE_GROUPS, so every group the app
 * may put a vault in is one where it already holds its roles (it never writes a role assignment itself).
 */
export function vaultGroupFindings(t: Template): Finding[] {
  const out: Finding[] = [];
  const fail = (where: string, message: string): void => void out.push({ rule: 'vault-groups', where, message });
  const accessFile = t.files.get('modules/workspaceVaultAccess.bicep');
  const calls = accessFile ? callSites(t, accessFile) : [];
  if (calls.length !== 1) return [{ rule: 'vault-groups', where: t.entry, message: `workspaceVaultAccess.bicep is deployed ${calls.length} times, not once per group` }];
  const { caller, call } = calls[0] as { caller: BicepFile; call: Declaration };
  const where = `${caller.path}:${call.line} ${call.name}`;
  const loop = /^\( (\w+) , (\w+) \) in (\w+)$/.exec(call.loop ?? '');
  if (!loop) return [{ rule: 'vault-groups', where, message: `the group access module must loop over the group names as (name, i), loops over ${call.loop ?? 'nothing'}` }];
  const [, , index, names] = loop as unknown as [string, string, string, string];
  if (caller.declarations.find((d) => d.name === names)?.keyword !== 'var') fail(where, `${names} is not a var of group names`);
  const scope = /^(\w+)\[(\w+)\]$/.exec(compact(scalar(at(call.value, 'scope'))));
  const groups = caller.declarations.find((d) => d.keyword === 'resource' && d.name === scope?.[1]);
  if (!scope || scope[2] !== index || !groups || resourceType(groups) !== 'Microsoft.Resources/resourceGroups')
    return [...out, { rule: 'vault-groups', where, message: `the module's scope must be the i-th vaults group, is ${scalar(at(call.value, 'scope')) ?? 'unset'}` }];
  const groupLoop = /^(?:(\w+)|\( (\w+) , \w+ \)) in (\w+)$/.exec(groups.loop ?? '');
  if (groupLoop?.[3] !== names || scalar(at(groups.value, 'name')) !== (groupLoop[1] ?? groupLoop[2]))
    fail(`${caller.path}:${groups.line} ${groups.name}`, `the vaults groups must be one per name in ${names}`);
  const roleArg = resolve(t, caller, at(call.value, 'params.vaultProvisionerRoleId'));
  const roleDecl = caller.declarations.find((d) => roleArg.includes(`customRole:${caller.path}#${d.name}`));
  const scopes = compact(scalar(at(roleDecl?.value, 'properties.assignableScopes')));
  if (!new RegExp(`^\\[for\\(\\w+,(\\w+)\\)in${names}:${groups.name}\\[\\1\\]\\.id\\]$`).test(scopes))
    fail(where, `the provisioner role must be assignable in every vaults group, is assignable in ${scopes || 'nothing'}`);
  const site = resourcesOfType(t, 'Microsoft.Web/sites')[0];
  const settings = site ? appSettingsOf(site.file, site.decl.value) : undefined;
  const listed = site ? resolve(t, site.file, settings?.get('WORKSPACE_VAULTS_RESOURCE_GROUPS')).map(compact) : [];
  if (listed.length !== 1 || listed[0] !== `unresolved:join(${names},',')`)
    fail(where, `WORKSPACE_VAULTS_RESOURCE_GROUPS must list every group (join(${names}, ',')), is ${listed.join(' | ') || 'unset'}`);
  const first = site ? resolve(t, site.file, settings?.get('WORKSPACE_VAULTS_RESOURCE_GROUP')).map(compact) : [];
  if (first.length !== 1 || first[0] !== `unresolved:${groups.name}[0].name`)
    fail(where, `WORKSPACE_VAULTS_RESOURCE_GROUP must be the first vaults group, is ${first.join(' | ') || 'unset'}`);
  return out;
}

function siteFindings(file: BicepFile, site: Declaration, v: BicepValue | undefined, w: string): Finding[] {
  const out: Finding[] = [];
  const identity = (scalar(at(v, 'identity.type')) ?? '').split(',').map((s) => s.trim());
  if (!identity.includes('SystemAssigned') && !identity.includes('UserAssigned'))
    out.push({ rule: 'site-identity', where: w, message: 'the app needs a managed identity' });
  expect(out, 'site-https', w, at(v, 'properties.httpsOnly'), 'true', 'httpsOnly');
  expect(out, 'site-tls', w, at(v, 'properties.siteConfig.minTlsVersion'), '1.2', 'minTlsVersion');
  expect(out, 'site-tls', w, at(v, 'properties.siteConfig.scmMinTlsVersion'), '1.2', 'scmMinTlsVersion');
  expect(out, 'site-ftp', w, at(v, 'properties.siteConfig.ftpsState'), 'Disabled', 'ftpsState');
  expect(out, 'site-runtime', w, at(v, 'properties.functionAppConfig.runtime.name'), 'node', 'runtime.name');
  expect(out, 'site-runtime', w, at(v, 'properties.functionAppConfig.runtime.version'), '22', 'runtime.version');
  const auth = scalar(at(v, 'properties.functionAppConfig.deployment.storage.authentication.type')) ?? 'unset';
  if (!/^(System|User)AssignedIdentity$/.test(auth))
    out.push({ rule: 'site-deployment-identity', where: w, message: `deployment storage authentication must be an identity, is ${auth}` });
  for (const policy of ['ftp', 'scm']) {
    const p = declarationsOf(file, 'resource').find(
      (d) => resourceType(d) === 'Microsoft.Web/sites/basicPublishingCredentialsPolicies' && scalar(at(d.value, 'name')) === policy && scalar(at(d.value, 'parent')) === site.name,
    );
    if (!p) out.push({ rule: 'site-basic-auth', where: w, message: `no ${policy} basicPublishingCredentialsPolicies resource` });
    else expect(out, 'site-basic-auth', w, at(p.value, 'properties.allow'), 'false', `${policy} basic publishing`);
  }
  const settings = appSettingsOf(file, v);
  if (!settings) return [...out, { rule: 'site-settings', where: w, message: 'app settings are neither a list nor items(<var>)' }];
  const setting = (name: string): BicepValue | undefined => settings.get(name);
  expect(out, 'setting-production', w, setting('DISCO_ENV'), 'production', 'DISCO_ENV');
  expect(out, 'setting-auth', w, setting('AUTH_MODE'), 'entra', 'AUTH_MODE');
  expect(out, 'setting-storage-identity', w, setting('AzureWebJobsStorage__credential'), 'managedidentity', 'AzureWebJobsStorage__credential');
  for (const name of ['AUTH_ISSUER', 'AUTH_JWKS_URL', 'AUTH_AUDIENCE', 'VAULT_MASTER_KEY_ID', 'AzureWebJobsStorage__accountName', 'DURABLE_TASK_HUB'])
    if (!settings.has(name)) out.push({ rule: 'setting-required', where: w, message: `${name} is not set` });
  for (const name of ['AzureWebJobsStorage', 'VAULT_MASTER_KEY_FILE', ...FLEX_REJECTED_SETTINGS])
    if (settings.has(name)) out.push({ rule: 'setting-forbidden', where: w, message: `${name} must not be set in production on Flex Consumption` });
  for (const name of settings.keys())
    if (/connection_?string/i.test(name) && name !== 'APPLICATIONINSIGHTS_CONNECTION_STRING')
      out.push({ rule: 'setting-forbidden', where: w, message: `${name} looks like a connection string` });
  if (settings.has('APPLICATIONINSIGHTS_CONNECTION_STRING'))
    expect(out, 'setting-insights-auth', w, setting('APPLICATIONINSIGHTS_AUTHENTICATION_STRING'), 'Authorization=AAD', 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING');
  return out;
}

/** The app settings of a site: a literal [{name, value}] list, or `[for s in items(<var>): ...]` over an object var. */
export function appSettingsOf(file: BicepFile, site: BicepValue | undefined): Map<string, BicepValue> | undefined {
  const list = at(site, 'properties.siteConfig.appSettings');
  const result = new Map<string, BicepValue>();
  if (list?.kind === 'array') {
    for (const item of list.items) {
      const name = scalar(at(item, 'name'));
      const value = at(item, 'value');
      if (name && value) result.set(name, value);
    }
    return result;
  }
  const source = list?.kind === 'expr' ? /items\((\w+)\)/.exec(list.text)?.[1] : undefined;
  const object = file.declarations.find((d) => d.keyword === 'var' && d.name === source)?.value;
  return object?.kind === 'object' ? new Map(object.entries) : undefined;
}

export interface RoleGrant {
  readonly role: string;
  readonly scopeType: string;
  readonly where: string;
}

/** Every role assignment, named by role and the type of its scope. */
export function roleGrants(t: Template): RoleGrant[] {
  const grants: RoleGrant[] = [];
  for (const { file, decl } of resourcesOfType(t, 'Microsoft.Authorization/roleAssignments')) {
    const roles = resolve(t, file, at(decl.value, 'properties.roleDefinitionId'));
    const scope = scalar(at(decl.value, 'scope'));
    const scopeDecl = scope ? file.declarations.find((d) => d.keyword === 'resource' && d.name === scope) : undefined;
    const fileScope = scalar(file.declarations.find((d) => d.keyword === 'targetScope')?.value) ?? 'resourceGroup';
    const scopeType = scope ? (scopeDecl ? resourceType(scopeDecl) : `unknown:${scope}`) : fileScope;
    for (const r of roles)
      grants.push({
        role: r.startsWith('builtin:') ? (ALLOWED_BUILT_IN_ROLES[r.slice('builtin:'.length)] ?? r) : r.replace(/^customRole:.*#/, 'custom:'),
        scopeType,
        where: `${file.path}:${decl.line} ${decl.name}`,
      });
  }
  return grants;
}

function roleFindings(t: Template): Finding[] {
  const out: Finding[] = [];
  for (const { file, decl } of resourcesOfType(t, 'Microsoft.Authorization/roleAssignments')) {
    const w = `${file.path}:${decl.line} ${decl.name}`;
    for (const r of resolve(t, file, at(decl.value, 'properties.roleDefinitionId')))
      if (!(r.startsWith('builtin:') && ALLOWED_BUILT_IN_ROLES[r.slice(8)]) && !r.startsWith('customRole:'))
        out.push({ rule: 'role-definition', where: w, message: `role ${r} is neither an allowed built-in role nor a custom role defined here` });
    for (const p of resolve(t, file, at(decl.value, 'properties.principalId')))
      if (!p.startsWith('identity:')) out.push({ rule: 'role-principal', where: w, message: `principalId resolves to ${p}, not the app's managed identity` });
    expect(out, 'role-principal-type', w, at(decl.value, 'properties.principalType'), 'ServicePrincipal', 'principalType');
  }
  for (const { file, decl } of resourcesOfType(t, 'Microsoft.Authorization/roleDefinitions')) {
    const w = `${file.path}:${decl.line} ${decl.name}`;
    const perms = at(decl.value, 'properties.permissions');
    for (const perm of perms?.kind === 'array' ? perms.items : []) {
      const actions = at(perm, 'actions');
      for (const action of actions?.kind === 'array' ? actions.items.map(scalar) : [])
        if (!action || action.includes('*') || /^Microsoft\.Authorization\//i.test(action) || /purge/i.test(action))
          out.push({ rule: 'custom-role-actions', where: w, message: `custom role action ${action} is too broad` });
      const data = at(perm, 'dataActions');
      if (data?.kind === 'array' && data.items.length > 0) out.push({ rule: 'custom-role-actions', where: w, message: 'custom roles here carry no data actions' });
    }
  }
  return out;
}
