/** Where a run's sandbox can be entered over SSH: a host agent this instance holds a channel to. */
export interface SshTarget {
  readonly hostId: string;
  /** The sandbox's ephemeral SSH host key as the agent reported it (`ssh-ed25519 AAAA…`), for the client to pin. */
  readonly hostKey?: string;
}

export interface SshTargets {
  /**
   * The run's sandbox's host, or undefined when the run has no sandbox on a host agent reachable from here. With
   * the run's workspace, a host whose sandbox another app instance serves is asked too (Web PubSub, several instances):
   * only the host and sandbox the run's events name (`expected`), so another host of the workspace claiming the run
   * is never where a member's session goes.
   */
  targetOf(runId: string, workspaceId?: string, expected?: { readonly sandboxId?: string; readonly hostId?: string }): SshTarget | undefined | Promise<SshTarget | undefined>;
}
