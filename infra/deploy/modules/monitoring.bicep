// Log Analytics and a workspace-based Application Insights component. Local (instrumentation key) ingestion is
// off: the connection string only says where to send telemetry, and the app must present an Entra token
// (APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD plus Monitoring Metrics Publisher).

param location string
param tags object
param logAnalyticsName string
param appInsightsName string

@minValue(30)
@maxValue(730)
param retentionInDays int

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      disableLocalAuth: true
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
