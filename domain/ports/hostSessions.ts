/**
 * A host agent's channel session, shared by every app instance that serves its connection (Web PubSub posts an
 * agent's frames to any instance). The head carries the sequence counters both ways; a change to it succeeds only
 * against the version the instance read (`etag`), so "exactly the next sequence number" holds across instances.
 * An admitted agent frame is deposited for whichever instance waits on it, in the same atomic write as the head's
 * change (docs/sandbox-hosts.md, "Several instances").
 */
export interface HostSessionAddress {
  readonly workspaceId: string;
  readonly hostId: string;
}

export interface HostSessionCapabilities {
  readonly isolated: boolean;
  readonly reason?: string;
  readonly keepsWorkspaceVolumes?: boolean;
}

export interface HostSessionHead extends HostSessionAddress {
  readonly session: string;
  readonly connectionId: string;
  /** The sequence number the agent's next frame must carry. */
  readonly nextInbound: number;
  /** The sequence number the platform's next frame carries. */
  readonly nextOutbound: number;
  /** Set by the agent's `ready`: until then the host takes no sandboxes. */
  readonly capabilities?: HostSessionCapabilities;
  /** ISO-8601. */
  readonly lastSeen: string;
  /** Why the session ended; '' while it is open. */
  readonly closed: string;
  /** The instance sending a frame to the agent now ('' when none) and until when (epoch ms) its claim holds. */
  readonly sender: string;
  readonly senderUntil: number;
  /** The version this copy was read at. */
  readonly etag: string;
}

export type HostSessionChange = Partial<Pick<HostSessionHead, 'nextInbound' | 'nextOutbound' | 'capabilities' | 'lastSeen' | 'closed' | 'sender' | 'senderUntil'>>;

/** An admitted agent frame waiting for the instance that expects it. */
export interface DepositedFrame {
  /** What the waiting instance waits on: `r:<requestId>` or `e:<execId>`. */
  readonly key: string;
  readonly seq: number;
  /** The frame's body as JSON (the agent's redacted output at most; never a delivery). */
  readonly body: string;
}

export interface HostSessionStore {
  /** Opens a host's session; an earlier session of the host is replaced, and returned so its connection can be closed. */
  open(head: Omit<HostSessionHead, 'etag'>): Promise<{ readonly head: HostSessionHead; readonly previous?: HostSessionHead }>;
  head(address: HostSessionAddress): Promise<HostSessionHead | undefined>;
  /** Every host's current head (open or closed). */
  heads(): Promise<readonly HostSessionHead[]>;
  /**
   * Changes the head if it is still at `head.etag`, depositing the frame (if any) in the same atomic write.
   * Resolves with the new head, or undefined when another instance changed it first (read it again).
   */
  update(head: HostSessionHead, change: HostSessionChange, deposit?: DepositedFrame): Promise<HostSessionHead | undefined>;
  /** An instance waits on `key` of this session (registered before the frame that causes the answer is sent). */
  expect(head: Pick<HostSessionHead, 'workspaceId' | 'hostId' | 'session'>, key: string, runId: string | undefined): Promise<void>;
  /** The waiting registration for `key`, if an instance waits on it. */
  expectation(head: Pick<HostSessionHead, 'workspaceId' | 'hostId' | 'session'>, key: string): Promise<{ runId?: string } | undefined>;
  /** The frames deposited for `key`, in sequence order, and the head as it is now (gone: undefined). */
  inbox(head: Pick<HostSessionHead, 'workspaceId' | 'hostId' | 'session'>, key: string): Promise<{ head: HostSessionHead | undefined; frames: readonly DepositedFrame[] }>;
  /** Removes consumed frames; `finished` also removes the registration. */
  consume(head: Pick<HostSessionHead, 'workspaceId' | 'hostId' | 'session'>, key: string, seqs: readonly number[], finished: boolean): Promise<void>;
  /** Removes every registration and frame of a session (the head stays, closed, for its last-seen time). */
  clear(head: Pick<HostSessionHead, 'workspaceId' | 'hostId' | 'session'>): Promise<void>;
}
