import path from 'node:path';
import type { SandboxHost } from '../domain/ports/sandboxHost';
import type { ServiceDependencies } from '../domain/services/dependencies';
import { selfSignedCertificate } from '../localhost/selfSignedCertificate';
import { hostChannelAuthority } from './hostChannelAuthority';
import { HostChannelServer } from '../infra/sandbox/remote/hostChannelServer';
import { hostChannelControl } from '../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../infra/sandbox/remote/remoteSandboxHost';
import type { Settings } from './settings';
import { openWebPubSubSandboxHost } from './webPubSubHosts.composition';
import { serveSshOverChannel } from './sshAccess.wiring';

/**
 * SANDBOX_HOST=remote: sandboxes run on enrolled host agents. Locally this process serves the host channel itself
 * (wss:// on HOST_CHANNEL_PORT, a self-signed certificate agents pin with --ca). In Azure the channel ends in Web
 * PubSub (docs/sandbox-hosts.md, functions/webPubSubHosts.composition.ts).
 */
export async function openRemoteSandboxHost(settings: Settings, deps: ServiceDependencies, platformHosts: readonly string[] = []): Promise<SandboxHost> {
  if (settings.DISCO_ENV === 'production') return openWebPubSubSandboxHost(settings, deps, platformHosts);
  const tls = selfSignedCertificate(path.resolve(settings.HOST_CHANNEL_TLS_DIR));
  const channel = await HostChannelServer.start({
    tls, authority: hostChannelAuthority(deps), port: settings.HOST_CHANNEL_PORT,
    log: (line) => console.log(line),
  });
  hostChannelControl.set(channel);
  console.log(`Host channel: ${channel.url} (agents: npm run host-agent -- --platform ${channel.url} --ca ${tls.certFile} --token <enrolment token>)`);
  const remote = new RemoteSandboxHost(channel, platformHosts);
  serveSshOverChannel(deps, channel, remote, tls.certFile);
  return remote;
}
