import type { SshTunnelStore } from '../domain/ports/sshTunnels';
import type { ServiceDependencies } from '../domain/services/dependencies';
import { recordSshSessionClosed, redeemSshTicket } from '../domain/services/runSsh';
import { randomHostCredentials } from '../infra/sandbox/remote/randomHostCredentials';
import type { RemoteSandboxHost } from '../infra/sandbox/remote/remoteSandboxHost';
import { sshAccessPoint } from '../infra/sandbox/remote/sshRelay';
import type { WebPubSubDataPlane, WebPubSubHostChannel } from '../infra/sandbox/remote/webPubSubHostChannel';
import { type WebPubSubSshAuthority, WebPubSubSshRelay } from '../infra/sandbox/remote/webPubSubSshRelay';

/** The same use cases as the local relay (sshAccess.wiring.ts): one redemption, decided on the run's stream. */
export function webPubSubSshAuthority(deps: ServiceDependencies): WebPubSubSshAuthority {
  return {
    redeem: (ticket) => redeemSshTicket(deps, randomHostCredentials, ticket),
    recordClosed: (session, reason) => recordSshSessionClosed(deps, session, reason),
  };
}

/** IDE SSH when the host channel ends in Web PubSub: proxies connect to the same hub, the tunnels are in the shared table. */
export function serveSshOverWebPubSub(deps: ServiceDependencies, channel: WebPubSubHostChannel, remote: RemoteSandboxHost, plane: WebPubSubDataPlane, tunnels: SshTunnelStore): void {
  const relay = new WebPubSubSshRelay({ authority: webPubSubSshAuthority(deps), tunnels, plane, log: (line) => console.log(line) });
  channel.serveSsh(relay);
  sshAccessPoint.set({ targets: remote, clientUrl: (ticketId) => relay.clientUrl(ticketId) });
}
