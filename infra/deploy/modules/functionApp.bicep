// The Functions app on the Flex Consumption plan (Linux, Node 20) with a system-assigned managed identity.
// Every connection is identity-based; no setting holds a key, password or connection string with a secret.
// The app settings are exactly what functions/settings.ts validates for DISCO_ENV=production, plus the
// identity-based connection settings the Functions host reads and the names the Key Vault adapters need.

param location string
param tags object
param planName string
param appName string
param storageAccountName string
param deploymentContainerName string
param appInsightsName string
param serviceBusFullyQualifiedNamespace string
param masterKeyUri string
param platformVaultUri string
param workspaceVaultsResourceGroupName string
param authIssuer string
param authJwksUrl string
param authAudience string
param durableTaskHub string
param eventLogTable string
param vaultTable string
param resolverCacheSeconds int
param maximumInstanceCount int
param instanceMemoryMB int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

var appSettings = {
  // Host storage (Functions runtime, Durable task hub) and the app's own tables, by managed identity.
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  // The connection a Service Bus trigger or output names as `ServiceBusConnection`.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  // The ingestion endpoint; local auth is disabled on the component, so this alone cannot write telemetry.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
  // functions/settings.ts, production.
  DISCO_ENV: 'production'
  AUTH_MODE: 'entra'
  AUTH_ISSUER: authIssuer
  AUTH_JWKS_URL: authJwksUrl
  AUTH_AUDIENCE: authAudience
  VAULT_MASTER_KEY_ID: masterKeyUri
  DURABLE_TASK_HUB: durableTaskHub
  EVENT_LOG_TABLE: eventLogTable
  VAULT_TABLE: vaultTable
  RESOLVER_CACHE_SECONDS: string(resolverCacheSeconds)
  // Where the Key Vault adapters find the platform vault (signing keys) and create workspace vaults.
  PLATFORM_KEY_VAULT_URL: platformVaultUri
  WORKSPACE_VAULTS_SUBSCRIPTION_ID: subscription().subscriptionId
  WORKSPACE_VAULTS_RESOURCE_GROUP: workspaceVaultsResourceGroupName
  WORKSPACE_VAULTS_LOCATION: location
  AZURE_TENANT_ID: tenant().tenantId
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '20'
      }
    }
  }
}

// Publishing with a user name and password (FTP, or basic auth to the SCM/Kudu site) is refused; deploys
// authenticate with Entra ID (az functionapp deploy, func, azd).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output principalId string = site.identity.principalId
output defaultHostName string = site.properties.defaultHostName
