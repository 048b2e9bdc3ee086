// Disco Parrot backend in Azure, deployed at subscription scope because it creates resource groups: the
// platform group (Function App, storage, platform Key Vault, Service Bus, monitoring) and the groups that hold
// only the per-workspace Key Vaults the app provisions at run time (DESIGN §6, docs/vault.md). Deploy with
//   az deployment sub create --location <region> --template-file infra/deploy/main.bicep \
//     --parameters infra/deploy/main.parameters.json
// then publish the code (docs/deploy.md).

targetScope = 'subscription'

@description('Short environment name (lowercase letters and digits), used in every resource name, e.g. prod.')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Region for every resource; it must offer the Flex Consumption plan.')
param location string

@description('Resource group for the platform resources.')
param platformResourceGroupName string = 'rg-discoparrot-${environmentName}'

@description('The first resource group that holds only workspace vaults; the app may create and delete Key Vaults here. Vaults recorded without a group live here.')
param workspaceVaultsResourceGroupName string = 'rg-discoparrot-${environmentName}-vaults'

@description('How many workspace-vault groups: the first above, then the same name with -01, -02, ... ARM allows 800 vaults per group, so raise this (never lower it) before the groups fill (docs/vault.md).')
@minValue(1)
@maxValue(50)
param workspaceVaultsGroupCount int = 1

@description('Live vaults per group before the app uses the next group; ARM allows 800, the rest is room for recovered vaults.')
@minValue(1)
@maxValue(800)
param workspaceVaultsPerGroup int = 700

@description('Audience callers\' Entra ID access tokens must carry: the API app registration\'s Application ID URI or client id.')
param authAudience string

@description('Token issuer. The default is the v2.0 issuer of this deployment\'s tenant.')
param authIssuer string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'

@description('Where the issuer\'s signing keys are published.')
param authJwksUrl string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/discovery/v2.0/keys'

@description('Durable Functions task hub: letters and digits, 3-45, unique per storage account and environment.')
@minLength(3)
@maxLength(45)
param durableTaskHub string = 'discoparrot${environmentName}'

@minLength(3)
@maxLength(63)
param eventLogTable string = 'eventlog'

@description('Blob container of encrypted log backups and witnessed heads (docs/backup.md).')
param backupContainerName string = 'auditarchive'

@description('Days a backup or witnessed head stays immutable in the archive container, then is deleted.')
@minValue(7)
@maxValue(3650)
param backupRetentionDays int = 90

@minLength(3)
@maxLength(63)
param vaultTable string = 'vault'

@description('Seconds a resolved secret value may be reused while its version is unchanged.')
@minValue(0)
@maxValue(300)
param resolverCacheSeconds int = 30

@description('Table of gateway bearers (SHA-256 hashes only).')
@minLength(3)
@maxLength(63)
param gatewayBearerTable string = 'gatewaybearers'

@description('Seconds one gateway operation may run (also bounded by the run\'s deadline).')
@minValue(1)
@maxValue(3600)
param gatewayOperationTimeoutSeconds int = 120

@description('Table where the platform signing keys rest, sealed under the vault master key.')
@minLength(3)
@maxLength(63)
param signingKeyTable string = 'signingkeys'

@description('Six-field NCRONTAB (UTC) of the signing-key rotation timer; default Sundays 03:00.')
param signingKeyRotationSchedule string = '0 0 3 * * 0'

@description('Six-field NCRONTAB (UTC) of the sweepExpired timer: leases, deadlines, orphaned sandboxes, purges.')
param sweepSchedule string = '0 */1 * * * *'

@description('Issuer (`iss`) of sandbox identity tokens, https. Empty: https://<function app host>. Set it to the front door\'s address once one serves /.well-known/jwks.json at the root.')
param platformIssuer string = ''

@description('Audience (`aud`) of sandbox identity tokens.')
@minLength(1)
param sandboxTokenAudience string = 'disco-parrot-sandbox'

@description('Lifetime of a sandbox identity token in minutes; also sizes how long a retired key stays in the JWKS.')
@minValue(1)
@maxValue(60)
param sandboxTokenMinutes int = 15

@description('Table of run-request ids already handled, so a redelivered queue message starts one run.')
@minLength(3)
@maxLength(63)
param runRequestTable string = 'runrequests'

@description('Table of workspaces with unpublished outbox rows.')
@minLength(3)
@maxLength(63)
param outboxIndexTable string = 'outboxpending'

@description('Six-field NCRONTAB (UTC) of the outbox dispatcher; it bounds how late an event reaches topic events.')
param outboxSchedule string = '*/5 * * * * *'

@description('Seconds an outbox marker is kept after its workspace looked drained, for appends still in flight.')
@minValue(60)
@maxValue(86400)
param outboxMarkerGraceSeconds int = 600

@allowed([
  'standard'
  'premium'
])
param platformVaultSku string = 'premium'

@allowed([
  'Enabled'
  'Disabled'
])
param platformVaultPublicNetworkAccess string = 'Enabled'

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param storageSku string = 'Standard_ZRS'

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@minValue(30)
@maxValue(730)
param logRetentionInDays int = 90

param tags object = {}

var token = toLower(uniqueString(subscription().id, environmentName, location))
var allTags = union(tags, {
  application: 'disco-parrot'
  environment: environmentName
})
var names = {
  plan: 'plan-discoparrot-${environmentName}-${token}'
  app: 'func-discoparrot-${environmentName}-${token}'
  storage: take(toLower('stdp${environmentName}${token}'), 24)
  deploymentContainer: 'app-package'
  platformVault: take('kv-dp-${environmentName}-${token}', 24)
  masterKey: 'vault-master'
  serviceBus: 'sb-discoparrot-${environmentName}-${token}'
  webPubSub: 'wps-discoparrot-${environmentName}-${token}'
  logAnalytics: 'log-discoparrot-${environmentName}-${token}'
  appInsights: 'appi-discoparrot-${environmentName}-${token}'
}

resource platformGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: platformResourceGroupName
  location: location
  tags: allTags
}

// In fill order; the app picks the first with room and records the group with the vault's name.
var workspaceVaultsGroupNames = [for i in range(0, workspaceVaultsGroupCount): i == 0 ? workspaceVaultsResourceGroupName : '${workspaceVaultsResourceGroupName}-${padLeft(i, 2, '0')}']

resource vaultsGroups 'Microsoft.Resources/resourceGroups@2024-03-01' = [for name in workspaceVaultsGroupNames: {
  name: name
  location: location
  tags: allTags
}]

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: platformGroup
  params: {
    location: location
    tags: allTags
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    retentionInDays: logRetentionInDays
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: platformGroup
  params: {
    location: location
    tags: allTags
    name: names.storage
    deploymentContainerName: names.deploymentContainer
    skuName: storageSku
    archiveContainerName: backupContainerName
    backupRetentionDays: backupRetentionDays
  }
}

module platformVault 'modules/platformVault.bicep' = {
  name: 'platformVault'
  scope: platformGroup
  params: {
    location: location
    tags: allTags
    name: names.platformVault
    masterKeyName: names.masterKey
    skuName: platformVaultSku
    publicNetworkAccess: platformVaultPublicNetworkAccess
  }
}

module serviceBus 'modules/serviceBus.bicep' = {
  name: 'serviceBus'
  scope: platformGroup
  params: {
    location: location
    tags: allTags
    name: names.serviceBus
  }
}

module webPubSub 'modules/webPubSub.bicep' = {
  name: 'webPubSub'
  scope: platformGroup
  params: {
    location: location
    tags: allTags
    name: names.webPubSub
  }
}

module app 'modules/functionApp.bicep' = {
  name: 'functionApp'
  scope: platformGroup
  params: {
    location: location
    tags: allTags
    planName: names.plan
    appName: names.app
    storageAccountName: storage.outputs.name
    deploymentContainerName: names.deploymentContainer
    appInsightsName: monitoring.outputs.appInsightsName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    eventsTopicName: serviceBus.outputs.eventsTopicName
    hostChannelEndpoint: webPubSub.outputs.endpoint
    hostChannelPrincipalId: webPubSub.outputs.principalId
    masterKeyUri: platformVault.outputs.masterKeyUri
    authIssuer: authIssuer
    authJwksUrl: authJwksUrl
    authAudience: authAudience
    durableTaskHub: durableTaskHub
    eventLogTable: eventLogTable
    backupContainerName: backupContainerName
    workspaceVaultsResourceGroupName: vaultsGroups[0].name
    workspaceVaultsResourceGroupNames: join(workspaceVaultsGroupNames, ',')
    workspaceVaultsPerGroup: workspaceVaultsPerGroup
    vaultTable: vaultTable
    resolverCacheSeconds: resolverCacheSeconds
    gatewayBearerTable: gatewayBearerTable
    gatewayOperationTimeoutSeconds: gatewayOperationTimeoutSeconds
    signingKeyTable: signingKeyTable
    signingKeyRotationSchedule: signingKeyRotationSchedule
    sweepSchedule: sweepSchedule
    platformIssuer: platformIssuer
    sandboxTokenAudience: sandboxTokenAudience
    sandboxTokenMinutes: sandboxTokenMinutes
    runRequestTable: runRequestTable
    outboxIndexTable: outboxIndexTable
    outboxSchedule: outboxSchedule
    outboxMarkerGraceSeconds: outboxMarkerGraceSeconds
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module webPubSubAccess 'modules/webPubSubAccess.bicep' = {
  name: 'webPubSubAccess'
  scope: platformGroup
  params: {
    appPrincipalId: app.outputs.principalId
    webPubSubName: webPubSub.outputs.name
    appHostName: app.outputs.defaultHostName
    authAudience: authAudience
  }
}

module platformAccess 'modules/platformAccess.bicep' = {
  name: 'platformAccess'
  scope: platformGroup
  params: {
    appPrincipalId: app.outputs.principalId
    storageAccountName: storage.outputs.name
    platformVaultName: platformVault.outputs.name
    masterKeyName: platformVault.outputs.masterKeyName
    serviceBusNamespaceName: serviceBus.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

// Narrower than Key Vault Contributor: no access-policy writes (which could grant data-plane access outside
// RBAC), no purge, nothing outside the workspace-vaults groups.
resource vaultProvisionerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, workspaceVaultsResourceGroupName, 'disco-parrot-workspace-vault-provisioner')
  properties: {
    roleName: 'Disco Parrot workspace vault provisioner (${workspaceVaultsResourceGroupName}, ${subscription().subscriptionId})'
    description: 'Create, read, soft-delete and recover Key Vaults in the Disco Parrot workspace-vaults resource groups.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.KeyVault/vaults/read'
          'Microsoft.KeyVault/vaults/write'
          'Microsoft.KeyVault/vaults/delete'
          'Microsoft.Resources/subscriptions/resourceGroups/read'
        ]
        notActions: [
          'Microsoft.KeyVault/vaults/accessPolicies/write'
        ]
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [for (name, i) in workspaceVaultsGroupNames: vaultsGroups[i].id]
  }
}

// Deleted vaults are listed per subscription and location, not per resource group, so reading them (to
// recover a workspace within retention) needs a subscription-scope grant; it carries no purge right, and
// purge protection makes Azure purge each vault itself when its retention ends.
resource deletedVaultReaderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, workspaceVaultsResourceGroupName, 'disco-parrot-deleted-vault-reader')
  properties: {
    roleName: 'Disco Parrot deleted vault reader (${workspaceVaultsResourceGroupName}, ${subscription().subscriptionId})'
    description: 'Read soft-deleted Key Vaults and Key Vault operation results, to recover a workspace within retention.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.KeyVault/locations/deletedVaults/read'
          'Microsoft.KeyVault/deletedVaults/read'
          'Microsoft.KeyVault/locations/operationResults/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      subscription().id
    ]
  }
}

// The same two group-level assignments in every vaults group, so the app never writes a role assignment itself.
module workspaceVaultAccess 'modules/workspaceVaultAccess.bicep' = [for (name, i) in workspaceVaultsGroupNames: {
  name: 'workspaceVaultAccess-${i}'
  scope: vaultsGroups[i]
  params: {
    appPrincipalId: app.outputs.principalId
    vaultProvisionerRoleId: vaultProvisionerRole.id
  }
}]

resource deletedVaultReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, names.app, deletedVaultReaderRole.id)
  properties: {
    roleDefinitionId: deletedVaultReaderRole.id
    principalId: app.outputs.principalId
    principalType: 'ServicePrincipal'
    description: 'Read soft-deleted workspace vaults'
  }
}

output platformResourceGroup string = platformGroup.name
output workspaceVaultsResourceGroup string = vaultsGroups[0].name
output workspaceVaultsResourceGroups array = workspaceVaultsGroupNames
output functionAppName string = app.outputs.name
output functionAppUrl string = 'https://${app.outputs.defaultHostName}'
output storageAccountName string = storage.outputs.name
output platformVaultUri string = platformVault.outputs.vaultUri
output masterKeyUri string = platformVault.outputs.masterKeyUri
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
