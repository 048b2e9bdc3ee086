// The platform's own Key Vault: the master key that wraps every data key the app seals with, used only
// through wrapKey/unwrapKey, so its private half never leaves Key Vault. Those data keys seal the workspace
// secrets of the encrypted Table vault and the Ed25519 signing keys (DESIGN §1.9), which rest in Table storage
// (docs/signing.md). Nothing else is stored here.

param location string
param tags object
param name string
param masterKeyName string

@description('`premium` keeps the master key in an HSM (RSA-HSM); `standard` uses a software-protected RSA key.')
@allowed([
  'standard'
  'premium'
])
param skuName string

@description('`Disabled` also needs VNet integration and a private endpoint, which this template does not create yet.')
@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: skuName
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'None'
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    }
  }
}

// ARM creates only the first version of a key; redeploying leaves existing versions alone. Rotation makes a
// new version each year; older versions stay enabled, so data keys they wrapped still unwrap (each wrapped
// key records the version that wrapped it).
resource masterKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = {
  parent: vault
  name: masterKeyName
  properties: {
    kty: skuName == 'premium' ? 'RSA-HSM' : 'RSA'
    keySize: 3072
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
    attributes: {
      enabled: true
    }
    rotationPolicy: {
      attributes: {
        expiryTime: 'P2Y'
      }
      lifetimeActions: [
        {
          trigger: {
            timeAfterCreate: 'P1Y'
          }
          action: {
            type: 'rotate'
          }
        }
        {
          trigger: {
            timeBeforeExpiry: 'P30D'
          }
          action: {
            type: 'notify'
          }
        }
      ]
    }
  }
}

output name string = vault.name
output vaultUri string = vault.properties.vaultUri
output masterKeyName string = masterKey.name
// Versionless: wrap always uses the newest version; unwrap uses the version recorded with each wrapped key.
output masterKeyUri string = masterKey.properties.keyUri
