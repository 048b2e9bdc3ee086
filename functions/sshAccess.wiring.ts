import type { ServiceDependencies } from '../domain/services/dependencies';
import { recordSshSessionClosed, redeemSshTicket } from '../domain/services/runSsh';
import type { HostChannelServer } from '../infra/sandbox/remote/hostChannelServer';
import { randomHostCredentials } from '../infra/sandbox/remote/randomHostCredentials';
import type { RemoteSandboxHost } from '../infra/sandbox/remote/remoteSandboxHost';
import { SshRelay, sshAccessPoint } from '../infra/sandbox/remote/sshRelay';

/** IDE SSH on the local channel server: the relay redeems tickets through the use cases and rides the run's host channel. */
export function serveSshOverChannel(deps: ServiceDependencies, channel: HostChannelServer, remote: RemoteSandboxHost, caFile: string): void {
  channel.serveSsh(new SshRelay({
    authority: {
      redeem: (ticket) => redeemSshTicket(deps, randomHostCredentials, ticket),
      recordClosed: (session, reason) => recordSshSessionClosed(deps, session, reason),
    },
    tunnels: remote,
    log: (line) => console.log(line),
  }));
  sshAccessPoint.set({ targets: remote, platformUrl: channel.url, caFile });
}
