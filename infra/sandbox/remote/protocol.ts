import { z } from 'zod';
import type { DomainErrorKind } from '../../../domain/errors';
import type { HostMessageRefusal } from '../../../domain/sandboxHosts';

/**
 * The narrow sandbox protocol between the platform and a host agent (docs/sandbox-hosts.md): create, exec (with
 * the deliveries of that one process), stdin for a process that asked for it, start, stop, teardown, set egress, list, locate (a run's sandbox), release
 * (stop its lease-holding processes for another app instance). There is no frame for a raw
 * engine call. Every frame names its host, workspace and session, and carries the sender's next sequence number;
 * a frame that is replayed, out of order, or for another host, workspace, session or run is refused and recorded.
 */
export const PROTOCOL_VERSION = 1;
/** Where the channel's WebSocket is served (locally by the host channel server, in Azure by Web PubSub's client endpoint). */
export const CHANNEL_PATH = '/api/hosts/channel';
/** The one place a credential directory's path appears in a delivery: the agent puts its own in. */
export const CREDENTIAL_DIR_PLACEHOLDER = '@@DP_CREDENTIAL_DIR@@';
/** The same for the sandbox's egress proxy (git's `http.proxy`): the agent puts in its process's, or nothing. */
/** The largest output chunk a frame carries (characters); the agent coalesces below it. */
export const OUTPUT_CHUNK_CHARS = 16 * 1024;
export const EGRESS_PROXY_PLACEHOLDER = '@@DP_EGRESS_PROXY@@';
/** The most SSH bytes one frame carries (before base64): the relay and the agent split anything larger. */
export const SSH_CHUNK_BYTES = 16 * 1024;
/** The most stdin bytes one frame carries (before base64): the platform splits anything larger. */
export const STDIN_CHUNK_BYTES = 16 * 1024;
/** Stdin frames of one process the platform may have sent unanswered; the agent refuses one past it. */
export const STDIN_FRAMES_IN_FLIGHT = 4;
/** Where an IDE's ssh-proxy opens its tunnel, next to the host channel (the ticket is its bearer). */
export const SSH_PATH = '/api/ssh/tunnel';

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.:-]+$/);
const stringMap = z.record(z.string().max(256), z.string().max(64 * 1024));

const envelope = {
  v: z.literal(PROTOCOL_VERSION),
  hostId: id,
  workspaceId: id,
  session: id,
  seq: z.number().int().min(1),
};

/** A path inside the process's credential directory: relative, no `..`. */
const deliveryPath = z.string().min(1).max(256).regex(/^(?!\/)(?!.*\.\.)[A-Za-z0-9_./-]+$/);

/** One credential for one process, as the channel carries it: only inside that process's exec or start. */
export const wireDelivery = z.strictObject({
  env: stringMap,
  argsAfterCommand: z.array(z.string().max(4096)).max(64),
  stdin: z.string().max(64 * 1024).optional(),
  /** Files relative to the process's credential directory, base64. */
  files: z.array(z.strictObject({ path: deliveryPath, base64: z.string().max(128 * 1024), mode: z.number().int().min(0).max(0o777) })).max(16),
  /**
   * Directories of the delivery, parents first, made (and given to the process's uid) before the files: a
   * delivery may need one empty (the gateway's private git directory has empty refs/ and objects/).
   */
  dirs: z.array(z.strictObject({ path: deliveryPath, mode: z.number().int().min(0).max(0o777) })).max(16).optional(),
});
export type WireDelivery = z.infer<typeof wireDelivery>;

export const wireCommand = z.strictObject({
  argv: z.array(z.string().max(64 * 1024)).min(1).max(1024),
  identity: z.enum(['agent', 'credential']),
  env: stringMap.optional(),
  cwd: z.string().max(1024).optional(),
  handOver: z.strictObject({ into: z.string().max(1024) }).optional(),
  timeoutMs: z.number().int().positive().optional(),
  maxOutputBytes: z.number().int().positive().optional(),
  /** Stream output frames while it runs (the exit still carries all of it). */
  streamOutput: z.boolean().optional(),
  /** The process reads stdin from `stdin` frames until `stdinEnd` (never with a delivery that claims its stdin). */
  stdin: z.boolean().optional(),
  deliveries: z.array(wireDelivery).max(16),
});
export type WireCommand = z.infer<typeof wireCommand>;

/** Opaque SSH bytes (the SSH transport is encrypted end to end between the IDE and the agent), base64, bounded. */
const sshBytes = z.string().max(Math.ceil(SSH_CHUNK_BYTES / 3) * 4).regex(/^[A-Za-z0-9+/]*={0,2}$/);
/** A process's stdin bytes, base64, bounded. */
const stdinBytes = z.string().min(1).max(Math.ceil(STDIN_CHUNK_BYTES / 3) * 4).regex(/^[A-Za-z0-9+/]*={0,2}$/);
/** An SSH host public key as OpenSSH writes it (the agent's ephemeral key for one sandbox). */
const sshHostKey = z.string().max(1024).regex(/^ssh-ed25519 [A-Za-z0-9+/]+={0,2}$/);

const egressAllowance = z.strictObject({ layers: z.array(z.array(z.string().max(260)).max(1000)).max(8), refuse: z.array(z.string().max(260)).max(256).optional() });

export const platformBody = z.discriminatedUnion('op', [
  /** The platform's first frame: the session every later frame of either side must name. */
  z.strictObject({ op: z.literal('session') }),
  z.strictObject({ op: z.literal('create'), requestId: id, runId: id, sandboxId: id, files: stringMap, env: stringMap.optional(), keptVolume: id.optional(), egress: egressAllowance.optional() }),
  z.strictObject({ op: z.literal('exec'), requestId: id, runId: id, sandboxId: id, execId: id, mode: z.enum(['exec', 'start']), command: wireCommand }),
  z.strictObject({ op: z.literal('stop'), requestId: id, runId: id, execId: id }),
  /**
   * Bytes for the stdin of a process the platform started with `stdin: true` in this run; `offset` is how many it
   * sent before (so a lost or reordered frame is refused, never spliced). Answered `done` once the process took
   * them, `failed` when refused (another run's process, one the platform did not start, one without stdin).
   */
  z.strictObject({ op: z.literal('stdin'), requestId: id, runId: id, execId: id, offset: z.number().int().min(0), data: stdinBytes }),
  /** The end of that process's input: it reads EOF once it took everything before `offset`. */
  z.strictObject({ op: z.literal('stdinEnd'), requestId: id, runId: id, execId: id, offset: z.number().int().min(0) }),
  z.strictObject({ op: z.literal('teardown'), requestId: id, runId: id, sandboxId: id }),
  z.strictObject({ op: z.literal('setEgress'), requestId: id, runId: id, sandboxId: id, egress: egressAllowance }),
  z.strictObject({ op: z.literal('list'), requestId: id }),
  /** Whether the host holds a sandbox of this run (another app instance finds a run's sandbox by its run id). */
  z.strictObject({ op: z.literal('locate'), requestId: id, runId: id }),
  /**
   * Another app instance takes the run's sandbox over: the agent stops every process started in it so far that
   * holds a lease (a credential process, or any given a delivery: a turn's model key), since those leases are no
   * longer supervised. Refused for a sandbox the host does not hold for that run.
   */
  z.strictObject({ op: z.literal('release'), requestId: id, runId: id, sandboxId: id }),
  /** An IDE's SSH session into a run's sandbox (its ticket already redeemed on the platform); `tunnelId` names it in later frames. */
  z.strictObject({ op: z.literal('sshOpen'), runId: id, sandboxId: id, tunnelId: id }),
  z.strictObject({ op: z.literal('sshData'), runId: id, tunnelId: id, data: sshBytes }),
  z.strictObject({ op: z.literal('sshClose'), runId: id, tunnelId: id }),
]);
export type PlatformBody = z.infer<typeof platformBody>;

export const wireResult = z.strictObject({
  exitCode: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean(),
  timedOut: z.boolean(),
  cancelled: z.boolean(),
});

/** What the sandbox's egress proxy decided since the previous tally (reported with each process's end). */
const egressTally = z.strictObject({
  allowed: z.number().int().min(0),
  refused: z.number().int().min(0),
  refusals: z.array(z.strictObject({ host: z.string().max(260), port: z.number().int(), reason: z.string().max(256) })).max(100),
});
export type WireEgressTally = z.infer<typeof egressTally>;

/**
 * How the inner host classed a failure (DomainErrorKind), so a refusal stays a refusal on the platform (an
 * invalid request is not an outage). Optional: an older agent's failures read as 'unavailable'.
 */
const failureKind = z.enum(['invalid', 'not_found', 'forbidden', 'conflict', 'precondition', 'too_large', 'unavailable', 'gone', 'upstream'] as const satisfies readonly DomainErrorKind[]);

export const agentBody = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('ready'), capabilities: z.strictObject({ isolated: z.boolean(), reason: z.string().max(1024).optional(), keepsWorkspaceVolumes: z.boolean().optional() }) }),
  z.strictObject({ kind: z.literal('created'), requestId: id, runId: id, sandboxId: id, workspace: z.string().max(1024), isolated: z.boolean(), sshHostKey: sshHostKey.optional() }),
  z.strictObject({ kind: z.literal('started'), requestId: id, runId: id, execId: id, pid: z.number().int() }),
  /** An exec's or a started process's end; its output already redacted by the agent of what it delivered, and again by the platform. */
  z.strictObject({ kind: z.literal('exited'), runId: id, execId: id, result: wireResult, egress: egressTally.optional() }),
  /** A chunk of a running process's output, redacted by the agent of what it delivered; the platform redacts it again before anyone sees it. */
  z.strictObject({ kind: z.literal('output'), runId: id, execId: id, stream: z.enum(['stdout', 'stderr']), text: z.string().max(OUTPUT_CHUNK_CHARS) }),
  z.strictObject({ kind: z.literal('done'), requestId: id, runId: id.optional() }),
  z.strictObject({ kind: z.literal('listed'), requestId: id, sandboxes: z.array(z.strictObject({ sandboxId: id, runId: id })) }),
  /** The answer to `locate`: the run's sandbox on this host, if it holds one. */
  z.strictObject({ kind: z.literal('located'), requestId: id, runId: id, sandbox: z.strictObject({ sandboxId: id, workspace: z.string().max(1024), isolated: z.boolean(), sshHostKey: sshHostKey.optional() }).optional() }),
  z.strictObject({ kind: z.literal('failed'), requestId: id, runId: id.optional(), code: z.string().max(128), message: z.string().max(2048), errorKind: failureKind.optional() }),
  z.strictObject({ kind: z.literal('heartbeat') }),
  z.strictObject({ kind: z.literal('sshData'), runId: id, tunnelId: id, data: sshBytes }),
  /** The agent ended an SSH session (the client left, the sandbox was torn down, it could not open). */
  z.strictObject({ kind: z.literal('sshClosed'), runId: id, tunnelId: id, reason: z.string().max(256) }),
]);
export type AgentBody = z.infer<typeof agentBody>;

export const platformFrame = z.strictObject({ ...envelope, body: platformBody });
export const agentFrame = z.strictObject({ ...envelope, body: agentBody });
export type PlatformFrame = z.infer<typeof platformFrame>;
export type AgentFrame = z.infer<typeof agentFrame>;

export interface ChannelBinding {
  readonly hostId: string;
  readonly workspaceId: string;
  readonly session: string;
}

export type Received<F> = { readonly ok: true; readonly frame: F } | { readonly ok: false; readonly reason: HostMessageRefusal; readonly messageType: string; readonly runId?: string };

/**
 * One direction of a channel: stamps outgoing frames with the binding and the next sequence number, and admits
 * an incoming frame only when it is well formed, names this binding and carries exactly the next number (so a
 * replayed or reordered frame, even a byte-exact copy of a genuine one, is refused).
 */
export class ChannelSequence {
  private sent: number;
  private received: number;
  /** `start`: the counters so far, when the session's state is kept outside this process (several app instances). */
  constructor(readonly binding: ChannelBinding, start: { sent?: number; received?: number } = {}) {
    this.sent = start.sent ?? 0;
    this.received = start.received ?? 0;
  }

  stamp<B>(body: B): { v: 1; hostId: string; workspaceId: string; session: string; seq: number; body: B } {
    this.sent += 1;
    return { v: PROTOCOL_VERSION, ...this.binding, seq: this.sent, body };
  }

  admit<F extends { seq: number; hostId: string; workspaceId: string; session: string }>(schema: z.ZodType<F>, raw: string): Received<F> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return { ok: false, reason: 'malformed', messageType: 'unparseable' };
    }
    const messageType = typeOf(parsed);
    const runId = runIdOf(parsed);
    const refuse = (reason: HostMessageRefusal): Received<F> => ({ ok: false, reason, messageType, ...(runId ? { runId } : {}) });
    const result = schema.safeParse(parsed);
    if (!result.success) return refuse('malformed');
    const frame = result.data;
    if (frame.hostId !== this.binding.hostId) return refuse('foreign-host');
    if (frame.workspaceId !== this.binding.workspaceId) return refuse('foreign-workspace');
    if (frame.session !== this.binding.session) return refuse('foreign-session');
    if (frame.seq <= this.received) return refuse('replayed');
    if (frame.seq !== this.received + 1) return refuse('out-of-order');
    this.received = frame.seq;
    return { ok: true, frame };
  }
}

function typeOf(parsed: unknown): string {
  const body = (parsed as { body?: { op?: unknown; kind?: unknown } } | null)?.body;
  const name = typeof body?.op === 'string' ? body.op : typeof body?.kind === 'string' ? body.kind : 'unknown';
  return name.slice(0, 32).replace(/[^A-Za-z0-9_-]/g, '?');
}

function runIdOf(parsed: unknown): string | undefined {
  const runId = (parsed as { body?: { runId?: unknown } } | null)?.body?.runId;
  return typeof runId === 'string' && /^[A-Za-z0-9_.:-]{1,128}$/.test(runId) ? runId : undefined;
}
