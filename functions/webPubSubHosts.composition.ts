import { DefaultAzureCredential } from '@azure/identity';
import type { SandboxHost } from '../domain/ports/sandboxHost';
import type { ServiceDependencies } from '../domain/services/dependencies';
import { enrolManagedPoolHost } from '../domain/services/managedPoolHosts';
import { readSandboxHost } from '../domain/services/sandboxHosts';
import { type PoolIdentityVerifier, entraPoolIdentityVerifier } from '../infra/sandbox/remote/managedPoolIdentity';
import { hostChannelAuthority } from './hostChannelAuthority';
import { hostChannelControl, randomHostCredentials } from '../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../infra/sandbox/remote/remoteSandboxHost';
import { type WebPubSubHostAuthority, WebPubSubHostChannel, azureWebPubSubDataPlane } from '../infra/sandbox/remote/webPubSubHostChannel';
import { entraUpstreamVerifier } from '../infra/sandbox/remote/webPubSubUpstreamAuth';
import { TableHostSessions } from '../infra/tables/tableHostSessions';
import { TableSshTunnels } from '../infra/tables/tableSshTunnels';
import { serveSshOverWebPubSub } from './sshWebPubSub.wiring';
import { appTableClient } from './composition';
import { type Settings, SettingsError } from './settings';

/** The channel's use cases plus the connect-time check that the host is still enrolled. */
export function webPubSubHostAuthority(deps: ServiceDependencies, poolIdentity?: PoolIdentityVerifier): WebPubSubHostAuthority {
  return {
    ...hostChannelAuthority(deps),
    isEnrolled: async (address) => (await readSandboxHost(deps.store, address)).status === 'Enrolled',
    ...(poolIdentity ? { enrolManaged: async (token: string) => enrolManagedPoolHost(deps, randomHostCredentials, await poolIdentity(token)) } : {}),
  };
}

let current: { channel: WebPubSubHostChannel; authority: WebPubSubHostAuthority } | undefined;
/** The process's Web PubSub channel, for the agent-facing HTTP routes (functions/hostChannel.http.ts). */
export const webPubSubChannel = {
  get: (): typeof current => current,
  set: (value: typeof current): void => {
    current = value;
  },
};

/**
 * SANDBOX_HOST=remote in Azure: the host channel ends in Web PubSub (HOST_CHANNEL_PUBSUB_ENDPOINT, hub
 * HOST_CHANNEL_PUBSUB_HUB), reached with the app's managed identity (DefaultAzureCredential); no key or
 * connection string exists. Upstream calls are accepted only with an Entra ID token of the tenant (AUTH_ISSUER,
 * AUTH_JWKS_URL) for the app's audience (AUTH_AUDIENCE), and of Web PubSub's identity when
 * HOST_CHANNEL_PUBSUB_PRINCIPAL_ID names it.
 */
export async function openWebPubSubSandboxHost(settings: Settings, deps: ServiceDependencies, platformHosts: readonly string[] = []): Promise<SandboxHost> {
  const endpoint = settings.HOST_CHANNEL_PUBSUB_ENDPOINT;
  if (!endpoint) throw new SettingsError('SANDBOX_HOST=remote in production needs HOST_CHANNEL_PUBSUB_ENDPOINT (the Web PubSub the host channel ends in; docs/sandbox-hosts.md)');
  if (!endpoint.startsWith('https://')) throw new SettingsError('HOST_CHANNEL_PUBSUB_ENDPOINT must be https://');
  if (!settings.AUTH_ISSUER || !settings.AUTH_JWKS_URL)
    throw new SettingsError('SANDBOX_HOST=remote in production needs AUTH_ISSUER and AUTH_JWKS_URL to check Web PubSub\'s upstream tokens');
  const principalId = settings.HOST_CHANNEL_PUBSUB_PRINCIPAL_ID;
  if (!principalId)
    throw new SettingsError('SANDBOX_HOST=remote in production needs HOST_CHANNEL_PUBSUB_PRINCIPAL_ID (the object id of Web PubSub\'s managed identity): without it a user\'s API token would pass for Web PubSub\'s upstream token');
  const pool = settings.MANAGED_POOL_PRINCIPAL_IDS;
  const authority = webPubSubHostAuthority(deps, pool ? entraPoolIdentityVerifier({
    issuer: settings.AUTH_ISSUER, audience: settings.AUTH_AUDIENCE, jwks: settings.AUTH_JWKS_URL, principalIds: pool.split(','),
  }) : undefined);
  const plane = azureWebPubSubDataPlane({ endpoint, hub: settings.HOST_CHANNEL_PUBSUB_HUB, credential: new DefaultAzureCredential() });
  const channel = new WebPubSubHostChannel({
    store: new TableHostSessions(appTableClient(settings, settings.HOST_SESSION_TABLE), { createTable: true }),
    plane,
    authority, endpoint, hub: settings.HOST_CHANNEL_PUBSUB_HUB,
    verifyUpstream: entraUpstreamVerifier({
      issuer: settings.AUTH_ISSUER, audience: settings.AUTH_AUDIENCE, jwks: settings.AUTH_JWKS_URL, principalId,
    }),
    log: (line) => console.log(line),
  });
  webPubSubChannel.set({ channel, authority });
  hostChannelControl.set(channel);
  const remote = new RemoteSandboxHost(channel, platformHosts);
  // IDE SSH rides the same hub; its tunnels are kept beside the host sessions (the same table).
  serveSshOverWebPubSub(deps, channel, remote, plane, new TableSshTunnels(appTableClient(settings, settings.HOST_SESSION_TABLE), { createTable: true }));
  return remote;
}
