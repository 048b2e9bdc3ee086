// What the app's managed identity may do in the platform resource group, each role at the narrowest scope
// that works: data roles only (no control-plane write anywhere here), the master key by itself rather than
// the whole vault, and nothing for any other principal. No secret role on the platform vault: the signing
// keys rest in Table storage, sealed under the master key (docs/signing.md), so the app reads no secret there.

import { builtInRoles } from 'roles.bicep'

param appPrincipalId string
param storageAccountName string
param platformVaultName string
param masterKeyName string
param serviceBusNamespaceName string
param appInsightsName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: platformVaultName
}

resource masterKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' existing = {
  parent: vault
  name: masterKeyName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Flex Consumption reads its package and the Durable extension keeps leases in blobs; run specs and
// transcripts are blobs.
resource storageBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, builtInRoles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Functions host, Flex deployment package, Durable leases, run specs, transcripts'
  }
}

resource storageQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, builtInRoles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Durable work-item and control queues, runs-poison'
  }
}

resource storageTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, builtInRoles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Event log, projections, encrypted vault, signing keys, gateway bearers, outbox index, run-request ledger, Durable history'
  }
}

// Read, wrapKey and unwrapKey on this one key: narrower than Key Vault Crypto User, which adds
// encrypt/decrypt/sign/verify, and scoped to the key so no other key in the vault is reachable.
resource masterKeyWrap 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(masterKey.id, appPrincipalId, builtInRoles.keyVaultCryptoServiceEncryptionUser)
  scope: masterKey
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.keyVaultCryptoServiceEncryptionUser)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Wrap and unwrap workspace data keys with the master key'
  }
}

resource serviceBusSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, appPrincipalId, builtInRoles.serviceBusDataSender)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.serviceBusDataSender)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Publish to topic events and queue runs'
  }
}

resource serviceBusReceive 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, appPrincipalId, builtInRoles.serviceBusDataReceiver)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.serviceBusDataReceiver)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Receive run requests from queue runs'
  }
}

// Local auth is off on the component, so telemetry is sent with the app's token.
resource telemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, builtInRoles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Application Insights ingestion with Entra ID'
  }
}
