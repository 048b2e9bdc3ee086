// The app's managed identity may send to and manage connections of the host channel hub (Web PubSub Service
// Owner: send, close a revoked host's connection, mint client tokens); nothing else holds a role on it.

import { builtInRoles } from 'roles.bicep'

param appPrincipalId string
param webPubSubName string

var webPubSubServiceOwner = builtInRoles.webPubSubServiceOwner

resource pubsub 'Microsoft.SignalRService/webPubSub@2024-03-01' existing = {
  name: webPubSubName
}

resource appOwnsHostChannel 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(pubsub.id, appPrincipalId, webPubSubServiceOwner)
  scope: pubsub
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', webPubSubServiceOwner)
  }
}
