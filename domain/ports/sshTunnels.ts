import type { HostSessionAddress } from './hostSessions';

/**
 * An IDE SSH session relayed through Web PubSub (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel): the
 * proxy's connection and the host tunnel it rides, shared by every app instance, since Web PubSub posts the
 * proxy's events and the agent's frames to any of them. No ticket or value is kept: ids and names only.
 */
export interface SshTunnelRecord {
  /** The ticket's id: it names the tunnel in the agent's frames and the proxy's Web PubSub user (`ssh:<id>`). */
  readonly tunnelId: string;
  /** The proxy's Web PubSub connection: the only one whose events reach this tunnel. */
  readonly connectionId: string;
  /** The SSH session as it was recorded on the run. */
  readonly workspaceId: string;
  readonly runId: string;
  readonly sessionId: string;
  readonly actor: string;
  /** The host the run's sandbox is on, and the channel session the tunnel was opened in. */
  readonly host: HostSessionAddress;
  readonly hostSession: string;
  readonly sandboxId: string;
  /** Why the tunnel ended; '' while it is open. An ended tunnel's row stays until its host session ends, so the agent's frames still in flight are dropped, not taken for forgeries. */
  readonly closed: string;
}

export interface SshTunnelStore {
  /** Keeps a new tunnel; throws when one with its id exists (a ticket opens one session). */
  open(record: Omit<SshTunnelRecord, 'closed'>): Promise<void>;
  get(tunnelId: string): Promise<SshTunnelRecord | undefined>;
  /** The tunnels opened on a host's channel (ended with its session). */
  onHost(address: HostSessionAddress): Promise<readonly SshTunnelRecord[]>;
  /** Marks an open tunnel ended; true only for the one call that ended it (its end is recorded once). */
  close(tunnelId: string, reason: string): Promise<boolean>;
  /** Removes a tunnel's row (its host session ended). */
  remove(tunnelId: string): Promise<void>;
}
