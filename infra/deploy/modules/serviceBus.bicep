// Service Bus for run requests (queue `runs`) and published domain events (topic `events`). SAS is disabled
// on the namespace, so only Entra ID principals with a data role can send or receive.

param location string
param tags object
param name string

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  // Standard is the smallest tier with topics.
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

// A run request that fails maxDeliveryCount times, or expires, is dead-lettered rather than lost or retried
// forever; maxDeliveryCount matches host.json's queues.maxDequeueCount for the local storage-queue path.
resource runsQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = {
  parent: namespace
  name: 'runs'
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 5
    deadLetteringOnMessageExpiration: true
    defaultMessageTimeToLive: 'P1D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    requiresSession: false
    enablePartitioning: false
  }
}

// The outbox dispatcher may publish an event twice after a crash; duplicate detection on the event id
// (MessageId) absorbs that within the window. Subscribers add their own subscriptions (with dead-lettering).
resource eventsTopic 'Microsoft.ServiceBus/namespaces/topics@2024-01-01' = {
  parent: namespace
  name: 'events'
  properties: {
    defaultMessageTimeToLive: 'P7D'
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    supportOrdering: true
    enablePartitioning: false
  }
}

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output runsQueueName string = runsQueue.name
output eventsTopicName string = eventsTopic.name
