// What the app's managed identity may do in the workspace-vaults resource group, which holds nothing but the
// per-workspace Key Vaults the app creates. A custom role (defined in main.bicep) lets it create, read and
// delete vaults there and nothing else; Key Vault Secrets Officer at the group's scope covers every vault it
// creates, so the app never needs Microsoft.Authorization/roleAssignments/write (which would let it grant
// itself anything).

import { builtInRoles } from 'roles.bicep'

param appPrincipalId string
param vaultProvisionerRoleId string

resource provisioner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, appPrincipalId, vaultProvisionerRoleId)
  properties: {
    roleDefinitionId: vaultProvisionerRoleId
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Create, read, soft-delete and recover workspace vaults in this group only'
  }
}

resource workspaceSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, appPrincipalId, builtInRoles.keyVaultSecretsOfficer)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles.keyVaultSecretsOfficer)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Set, overwrite, delete and resolve workspace secrets in the vaults of this group'
  }
}
