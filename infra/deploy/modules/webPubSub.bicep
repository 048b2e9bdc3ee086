// Azure Web PubSub: where host agents' channels end in Azure (docs/sandbox-hosts.md). Functions cannot hold a
// WebSocket; agents dial out to this service, and the app's activities send to a host and read its answers through
// it. Access keys are disabled: the app reaches it with its managed identity only, and agents connect with a
// short-lived client access token the platform mints for an authenticated host.

param location string
param tags object
param name string

resource pubsub 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  tags: tags
  // Its own identity: upstream calls to the app carry an Entra ID token of it (managed-identity upstream auth).
  identity: {
    type: 'SystemAssigned'
  }
  sku: {
    name: 'Standard_S1'
    capacity: 1
  }
  properties: {
    disableLocalAuth: true
    disableAadAuth: false
    publicNetworkAccess: 'Enabled'
    tls: {
      clientCertEnabled: false
    }
  }
}

output name string = pubsub.name
output endpoint string = 'https://${pubsub.properties.hostName}'
output principalId string = pubsub.identity.principalId
