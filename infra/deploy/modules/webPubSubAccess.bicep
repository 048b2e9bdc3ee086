// The app's managed identity may send to and manage connections of the host channel hub (Web PubSub Service
// Owner: send, close a revoked host's connection, mint client tokens); nothing else holds a role on it.

import { builtInRoles } from 'roles.bicep'

param appPrincipalId string
param webPubSubName string
@description('The app\'s host name: Web PubSub posts the agents\' frames to its upstream route.')
param appHostName string
@description('The app\'s Entra ID audience: Web PubSub\'s upstream token is issued for it.')
param authAudience string

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

// The host channel hub: agents' frames (user event `message`) and their connections' lifecycle go upstream to the
// app, each call with an Entra ID token of Web PubSub's identity for the app's audience (no key, no signature
// secret); `connect` lets the app refuse a client token minted before a revocation.
resource hostChannelHub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: pubsub
  name: 'sandboxhosts'
  properties: {
    anonymousConnectPolicy: 'Deny'
    eventHandlers: [
      {
        urlTemplate: 'https://${appHostName}/api/hosts/events'
        // `message`: a host agent's frames; `sshData`: an IDE ssh-proxy's bytes (webPubSubSshRelay.ts).
        userEventPattern: 'message,sshData'
        systemEvents: [
          'connect'
          'connected'
          'disconnected'
        ]
        auth: {
          type: 'ManagedIdentity'
          managedIdentity: {
            resource: authAudience
          }
        }
      }
    ]
  }
}
