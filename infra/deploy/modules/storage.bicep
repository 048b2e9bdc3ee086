// The app's one storage account: the Functions host and Durable task hub (blobs, queues, tables), the app's
// tables (which it creates on first use), run specs and transcripts, the runs-poison queue, and the Flex
// Consumption deployment container. Reached only with Entra ID: shared keys (and so connection strings and
// SAS) are refused by the account itself.

param location string
param tags object
param name string
param deploymentContainerName string

@description('How long log backups and witnessed heads stay immutable (and are kept) in the archive container, in days.')
@minValue(7)
@maxValue(3650)
param backupRetentionDays int = 90

@description('The archive container: encrypted log backups and signed heads (docs/backup.md).')
param archiveContainerName string = 'auditarchive'

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param skuName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    supportsHttpsTrafficOnly: true
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

// Flex Consumption reads the app package from here with the app's identity.
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Run specs as submitted (validated, secret references only), read by the run lifecycle's activities.
resource runSpecsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'runspecs'
  properties: {
    publicAccess: 'None'
  }
}

// Redacted run transcripts (DESIGN §3: transcripts/{ws}/{runId}/{n}).
resource transcriptsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'transcripts'
  properties: {
    publicAccess: 'None'
  }
}

// Log backups (encrypted per workspace) and signed heads witnessed outside the table (docs/backup.md). A time-based
// retention policy makes every blob immutable for backupRetentionDays: nobody, the app's identity included, can
// overwrite or delete one before then. Lock it (`az storage container immutability-policy lock`) once the
// retention is settled: a locked policy can be extended, never shortened or removed.
resource archiveContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: archiveContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource archiveImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: archiveContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: backupRetentionDays
    allowProtectedAppendWrites: false
  }
}

// Backups and heads past their retention are deleted by the platform, so "how far back" is backupRetentionDays.
resource archiveLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'archive-retention'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [ 'blockBlob' ]
              prefixMatch: [ '${archiveContainerName}/' ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: backupRetentionDays + 1
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Run requests refused for good (malformed, unauthorised, unknown workspace) are written here with their reason,
// for Service Bus deliveries as well (functions/runQueue.ts); created now so it can be watched from day one.
// The app would create it on first use. Queues `runs` and `events` are Service Bus entities in Azure.
resource runsPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'runs-poison'
}

output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
