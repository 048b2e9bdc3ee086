import { HOST_ERROR } from '../../../domain/catalogue';
import { DomainError } from '../../../domain/errors';
import type { HostSessionHead, HostSessionStore } from '../../../domain/ports/hostSessions';
import type { HostMessageRefusal } from '../../../domain/sandboxHosts';
import { type ChannelConnection, HostGoneError, type OutputListener } from './hostChannelServer';
import { type AgentBody, ChannelSequence, type PlatformBody } from './protocol';

/**
 * How long an instance's claim to send the next frame holds (a REST send takes milliseconds), how often a waiting
 * instance reads its inbox (growing by half from the first interval up to the last while nothing arrives).
 */
export const SHARED_SESSION_TIMING = { sendClaimMs: 15_000, pollFirstMs: 10, pollMaxMs: 400 };

export type ChannelRefusal = { reason: HostMessageRefusal; messageType: string; runId?: string };

/** What a shared session needs of its instance: the store, the transport, and where refusals and frames go. */
export interface SharedSessionContext {
  readonly store: HostSessionStore;
  /** This instance's id (who holds a send claim). */
  readonly instance: string;
  send(connectionId: string, raw: string): Promise<void>;
  /** Ends a session for every instance: the head is marked closed with the reason and its rows removed. */
  closeSession(head: HostSessionHead, reason: string, options: { closeConnection: boolean }): Promise<void>;
  tap(direction: 'to-host' | 'from-host', raw: string): void;
  log(line: string): void;
  /** Records a refusal on the host (the agent refused a frame naming a run it does not hold). */
  refused(address: { workspaceId: string; hostId: string }, refusal: ChannelRefusal): void;
}

interface Waiter {
  readonly runId: string | undefined;
  readonly onOutput: OutputListener | undefined;
  /** The operation waited on (`request`), named in a refusal. */
  readonly op?: string;
  resolve(body: AgentBody): void;
  reject(error: Error): void;
}

/** The key an agent's answer is deposited under: its request, or its process. */
export function waitKeyOf(body: AgentBody): string | undefined {
  if (body.kind === 'ready' || body.kind === 'heartbeat') return undefined;
  if (body.kind === 'output' || body.kind === 'exited') return `e:${body.execId}`;
  // IDE SSH tunnels (webPubSubSshRelay.ts): no instance waits on them; the relay's record decides where they go.
  if (body.kind === 'sshData' || body.kind === 'sshClosed') return `t:${body.tunnelId}`;
  return `r:${body.requestId}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One host's session as one app instance sees it. The session itself (sequence counters, the send claim, the
 * frames admitted for waiting instances) is in the shared store: this instance sends with the next outbound
 * number it claims from the head, and waits for its answers by reading the frames deposited for it, unless the
 * agent's frame reached this very instance, which hands it over at once.
 */
export class SharedHostSession implements ChannelConnection {
  readonly workspaceId: string;
  readonly hostId: string;
  readonly session: string;
  readonly connectionId: string;
  capabilities: HostSessionHead['capabilities'];
  lastSeen: string;
  sandboxes = 0;
  private goneReason: string | undefined;
  private readonly waiters = new Map<string, Waiter>();
  private registrations: Promise<unknown> = Promise.resolve();
  private sending: Promise<unknown> = Promise.resolve();

  constructor(private readonly context: SharedSessionContext, head: HostSessionHead) {
    this.workspaceId = head.workspaceId;
    this.hostId = head.hostId;
    this.session = head.session;
    this.connectionId = head.connectionId;
    this.capabilities = head.capabilities;
    this.lastSeen = head.lastSeen;
    if (head.closed) this.end(head.closed);
  }

  /** Records an answer the platform refused for what it says (a `located` naming another sandbox than the run's). */
  refuse(refusal: ChannelRefusal): void {
    this.context.refused(this, refusal);
  }


  get live(): boolean {
    return this.goneReason === undefined && this.capabilities !== undefined;
  }

  get gone(): boolean {
    return this.goneReason !== undefined;
  }

  /** The head as another instance left it: the agent's capabilities and last frame, or the session's end. */
  observe(head: HostSessionHead | undefined): void {
    if (!head) return this.end('the session ended');
    if (head.session !== this.session) return this.end('replaced by a new connection of the same host');
    if (head.capabilities) this.capabilities = head.capabilities;
    if (head.lastSeen > this.lastSeen) this.lastSeen = head.lastSeen;
    if (head.closed) this.end(head.closed);
  }

  /** Fails what this instance waits on (the session is over for every instance; the store says so). */
  end(reason: string): void {
    if (this.goneReason !== undefined) return;
    this.goneReason = reason;
    const error = new HostGoneError(reason);
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
  }

  /** What this instance waits on under `key` (its run), if it does. */
  waiting(key: string): { runId?: string } | undefined {
    const waiter = this.waiters.get(key);
    return waiter ? (waiter.runId !== undefined ? { runId: waiter.runId } : {}) : undefined;
  }

  /** An admitted frame for a key this instance waits on. */
  deliver(key: string, body: AgentBody): void {
    const waiter = this.waiters.get(key);
    if (!waiter) return;
    if (body.kind === 'output') return waiter.onOutput?.(body.stream, body.text);
    this.waiters.delete(key);
    // The agent refused a frame naming a run it does not hold there: a foreign message, recorded like the platform's refusals.
    if (body.kind === 'failed' && body.code === HOST_ERROR.FOREIGN_RUN) this.context.refused(this, { reason: 'foreign-run', messageType: waiter.op ?? 'unknown', ...(body.runId ? { runId: body.runId } : {}) });
    if (body.kind === 'failed') waiter.reject(new DomainError(body.code, body.message, body.errorKind ?? 'unavailable'));
    else waiter.resolve(body);
  }

  request(body: PlatformBody & { requestId: string }): Promise<AgentBody> {
    if (this.goneReason !== undefined) return Promise.reject(new HostGoneError(this.goneReason));
    const key = `r:${body.requestId}`;
    const runId = 'runId' in body ? body.runId : undefined;
    const answer = this.wait(key, runId, undefined, body.op);
    this.register(key, runId).catch((error: unknown) => this.fail(key, error));
    void this.send(body).then(() => this.poll(key), (error: unknown) => this.fail(key, error));
    return answer;
  }

  /** Resolves with the process's `exited` (registered before the exec is sent: `request` sends after every registration). */
  awaitExit(execId: string, runId: string, onOutput?: OutputListener): Promise<AgentBody> {
    if (this.goneReason !== undefined) return Promise.reject(new HostGoneError(this.goneReason));
    const key = `e:${execId}`;
    const exited = this.wait(key, runId, onOutput);
    void this.register(key, runId).then(() => this.poll(key), (error: unknown) => this.fail(key, error));
    return exited;
  }

  /** Sends a frame nobody waits on here (an IDE SSH tunnel's), in the session's order; resolves once it was sent. */
  sendFrame(body: PlatformBody): Promise<void> {
    if (this.goneReason !== undefined) return Promise.reject(new HostGoneError(this.goneReason));
    return this.send(body);
  }

  /** Sends the session's first frame under the claim the opening instance took with the head. */
  async open(claimed: HostSessionHead): Promise<void> {
    await this.transmit(claimed, { op: 'session' });
  }

  private wait(key: string, runId: string | undefined, onOutput: OutputListener | undefined, op?: string): Promise<AgentBody> {
    return new Promise<AgentBody>((resolve, reject) => this.waiters.set(key, { runId, onOutput, resolve, reject, ...(op ? { op } : {}) }));
  }

  private fail(key: string, error: unknown): void {
    const waiter = this.waiters.get(key);
    this.waiters.delete(key);
    waiter?.reject(error instanceof Error ? error : new Error(String(error)));
  }

  private register(key: string, runId: string | undefined): Promise<void> {
    const registered = this.registrations.then(() => this.context.store.expect(this, key, runId));
    this.registrations = registered.catch(() => undefined);
    return registered;
  }

  /**
   * One send at a time from this instance; across instances, the head's claim. The frame leaves only after every
   * waiter registered before it (its answer must find the registration); the claim is taken meanwhile.
   */
  private send(body: PlatformBody): Promise<void> {
    const registered = this.registrations;
    const sent = this.sending.then(() => this.claimAndSend(body, registered));
    this.sending = sent.catch(() => undefined);
    return sent;
  }

  private async claimAndSend(body: PlatformBody, registered: Promise<unknown>): Promise<void> {
    let pause = 2;
    for (;;) {
      if (this.goneReason !== undefined) throw new HostGoneError(this.goneReason);
      const head = await this.context.store.head(this);
      this.observe(head);
      if (!head || this.goneReason !== undefined) throw new HostGoneError(this.goneReason ?? 'the session ended');
      const now = Date.now();
      if (head.sender !== '') {
        if (head.senderUntil > now) {
          await sleep(pause);
          pause = Math.min(pause * 2, 50);
          continue;
        }
        // An instance stopped between claiming a number and releasing it: whether the agent got that frame is
        // unknown, so the order both sides keep is lost. The session ends; the agent reconnects to a new one.
        await this.context.closeSession(head, 'a send to the host was interrupted; reconnect', { closeConnection: true });
        throw new HostGoneError('a send to the host was interrupted');
      }
      const claimed = await this.context.store.update(head, { sender: this.context.instance, senderUntil: now + SHARED_SESSION_TIMING.sendClaimMs, nextOutbound: head.nextOutbound + 1 });
      if (!claimed) continue;
      await registered;
      return this.transmit(claimed, body, head.nextOutbound);
    }
  }

  private async transmit(claimed: HostSessionHead, body: PlatformBody, seq = claimed.nextOutbound - 1): Promise<void> {
    const raw = JSON.stringify(new ChannelSequence({ hostId: this.hostId, workspaceId: this.workspaceId, session: this.session }, { sent: seq - 1 }).stamp(body));
    this.context.tap('to-host', raw);
    try {
      await this.context.send(this.connectionId, raw);
    } catch (error) {
      // The number is spent whether or not the frame arrived: the order is lost, so the session ends.
      this.context.log(`host channel (Web PubSub): a send to connection ${this.connectionId} failed: ${(error as Error).message}`);
      await this.context.closeSession(claimed, 'a send to the host failed; reconnect', { closeConnection: true }).catch(() => undefined);
      throw new HostGoneError('a send to the host failed');
    }
    await this.release(claimed);
  }

  private async release(claimed: HostSessionHead): Promise<void> {
    let head: HostSessionHead | undefined = claimed;
    while (head && head.session === this.session && head.sender === this.context.instance) {
      if (await this.context.store.update(head, { sender: '', senderUntil: 0 })) return;
      head = await this.context.store.head(this);
    }
  }

  /** Reads what was deposited for `key` until its waiter is done; then removes the registration and what is left. */
  private async poll(key: string): Promise<void> {
    const { store } = this.context;
    let pause = SHARED_SESSION_TIMING.pollFirstMs;
    while (this.waiters.has(key)) {
      await sleep(pause);
      if (!this.waiters.has(key)) break;
      let read: Awaited<ReturnType<HostSessionStore['inbox']>>;
      try {
        read = await store.inbox(this, key);
      } catch (error) {
        this.context.log(`host channel (Web PubSub): reading session ${this.session} failed: ${(error as Error).message}`);
        pause = SHARED_SESSION_TIMING.pollMaxMs;
        continue;
      }
      for (const frame of read.frames) this.deliver(key, JSON.parse(frame.body) as AgentBody);
      // Frames first: an answer deposited just before the session ended is still the answer.
      this.observe(read.head);
      const finished = !this.waiters.has(key);
      if (read.frames.length > 0 || finished) await store.consume(this, key, read.frames.map((f) => f.seq), finished).catch(() => undefined);
      if (finished) return;
      pause = read.frames.length > 0 ? SHARED_SESSION_TIMING.pollFirstMs : Math.min(Math.ceil(pause * 1.5), SHARED_SESSION_TIMING.pollMaxMs);
    }
    // Answered here (the frame reached this instance): output chunks another instance deposited may be left.
    const left = key.startsWith('e:') ? await store.inbox(this, key).catch(() => undefined) : undefined;
    await store.consume(this, key, left?.frames.map((f) => f.seq) ?? [], true).catch(() => undefined);
  }
}

