import { randomBytes } from 'node:crypto';
import type { ExtensionContext, HostLogger } from '../hostExtension';
import type { EntityRunner } from './entities';
import { EventType, parseJsonText, subOrchestrationFailure, type HistoryEvent } from './historyEvents';
import { openWork, parseEntityMessage, type InboxItem, type SectionLock } from './episodePlanner';
import { newExecutionId, planEpisode, type LoadedInstance } from './episodeRunner';
import { InstanceExistsError, isTerminal, type InstanceRecord, type InstanceStore } from './instanceStore';
import { KeyedSerializer, Semaphore } from './concurrency';
import type { WorkQueues } from './workQueues';

export interface EngineDeps {
  readonly store: InstanceStore;
  readonly queues: WorkQueues;
  readonly invoke: ExtensionContext['invoke'];
  readonly log: HostLogger;
  readonly maxConcurrentEpisodes: number;
  readonly clock?: () => Date;
  /** Called after work items were enqueued, so the activity worker polls at once. */
  readonly onWorkItems?: () => void;
  /** Runs entity operations that orchestrations call or signal; without it they are dropped. */
  readonly entities?: EntityRunner;
}

export interface ParentLink {
  readonly instanceId: string;
  readonly executionId: string;
  readonly taskId: number;
}

export type DeliverResult = 'recorded' | 'duplicate' | 'notFound' | 'terminal';

/**
 * Runs orchestrations: one serialised actor per instance (episodes never overlap for an instance, many
 * instances progress at once). Every change is written to Table storage before it is acted on: an inbound
 * event is an inbox row before an episode may use it, an episode's history and instance row are committed
 * before its work items, timers and child instances are dispatched, so `recover` can rebuild all of them.
 */
export class OrchestrationEngine {
  private readonly serial = new KeyedSerializer();
  private readonly loaded = new Map<string, LoadedInstance>();
  private readonly episodeQueued = new Set<string>();
  private readonly episodes: Semaphore;
  private lastOrder = 0;
  private readonly clock: () => Date;

  constructor(private readonly deps: EngineDeps) {
    this.episodes = new Semaphore(deps.maxConcurrentEpisodes);
    this.clock = deps.clock ?? (() => new Date());
  }

  /** Strictly increasing arrival order for inbox rows, also across restarts (it starts from the clock). */
  nextOrder(): number {
    this.lastOrder = Math.max(this.lastOrder + 1, this.clock().getTime() * 1000);
    return this.lastOrder;
  }

  /** Creates an instance; 'exists' when one with this id is still running (a finished one is replaced). */
  start(name: string, instanceId: string, input: string | undefined, parent?: ParentLink): Promise<'started' | 'exists'> {
    return this.serial.run(instanceId, async () => {
      const existing = await this.load(instanceId);
      if (existing) {
        if (parent && existing.record.parentInstanceId === parent.instanceId && existing.record.parentTaskId === parent.taskId) return 'started';
        if (!isTerminal(existing.record.status)) return 'exists';
        await this.deps.store.purge(instanceId);
        this.loaded.delete(instanceId);
      }
      const at = this.clock().toISOString();
      const record: InstanceRecord = {
        instanceId, name, executionId: newExecutionId(), status: 'Pending', createdTime: at, lastUpdatedTime: at, historyCount: 0,
        counters: { nextSequence: 0, actionCount: 0, retries: [] },
        ...(input !== undefined ? { input } : {}),
        ...(parent ? { parentInstanceId: parent.instanceId, parentExecutionId: parent.executionId, parentTaskId: parent.taskId } : {}),
      };
      try {
        await this.deps.store.createInstance(record);
      } catch (error) {
        if (error instanceof InstanceExistsError) return 'exists';
        throw error;
      }
      this.loaded.set(instanceId, { record, history: [], appliedKeys: new Set(), pending: new Map() });
      this.requestEpisode(instanceId);
      return 'started';
    });
  }

  /** Records an inbound event (durably, deduplicated by key) and schedules an episode to apply it. */
  deliver(instanceId: string, executionId: string | undefined, event: HistoryEvent, key?: string): Promise<DeliverResult> {
    return this.serial.run(instanceId, async () => {
      const s = await this.load(instanceId);
      if (!s) return 'notFound';
      if (isTerminal(s.record.status) || (executionId !== undefined && executionId !== s.record.executionId)) return 'terminal';
      const item: InboxItem = { key: key ?? `e-${this.nextOrder()}-${randomBytes(4).toString('hex')}`, order: this.nextOrder(), event };
      if (s.appliedKeys.has(item.key) || s.pending.has(item.key)) return 'duplicate';
      const inserted = await this.deps.store.insertInbox(instanceId, s.record.executionId, item);
      s.pending.set(item.key, item);
      this.requestEpisode(instanceId);
      return inserted ? 'recorded' : 'duplicate';
    });
  }

  /** True while the activity's completion is recorded nowhere (neither history nor inbox) and the instance runs. */
  isTaskOpen(instanceId: string, executionId: string, taskId: number): Promise<boolean> {
    return this.serial.run(instanceId, async () => {
      const s = await this.load(instanceId);
      if (!s || isTerminal(s.record.status) || s.record.executionId !== executionId) return false;
      const key = taskKey(executionId, taskId);
      return !s.appliedKeys.has(key) && !s.pending.has(key);
    });
  }

  async purge(instanceId: string): Promise<'purged' | 'notFound' | 'running'> {
    return this.serial.run(instanceId, async () => {
      const record = (await this.load(instanceId))?.record;
      if (!record) return 'notFound';
      if (!isTerminal(record.status)) return 'running';
      await this.deps.store.purge(instanceId);
      this.loaded.delete(instanceId);
      return 'purged';
    });
  }

  /**
   * Rewinds a failed instance as the Durable extension does: its failed activities and sub-orchestrations
   * (recursively rewound) run again, completed ones keep their results, and the instance replays on.
   * The failures leave history (a task's schedule stays, so replay numbering is unchanged), which makes
   * those tasks open work, dispatched like after a restart. Retried tasks are not rewound ('unsupported'):
   * a retry's failures and timers are numbered by the replay and cannot be taken back one by one; nor is an
   * instance that failed inside a critical section, whose locks others may hold by now.
   */
  async rewind(instanceId: string, reason: string): Promise<'rewound' | 'notFound' | 'notFailed' | 'unsupported'> {
    const children: string[] = [];
    const result = await this.serial.run(instanceId, async () => {
      const s = await this.load(instanceId);
      if (!s) return 'notFound' as const;
      if (s.record.status !== 'Failed') return 'notFailed' as const;
      // Retried tasks: see above. A section it failed in: its locks were released when it failed.
      if (s.record.counters.retries.length > 0 || s.record.counters.lock) return 'unsupported' as const;
      const removed = (e: HistoryEvent): boolean =>
        e.EventType === EventType.TaskFailed || e.EventType === EventType.SubOrchestrationInstanceFailed || e.EventType === EventType.ExecutionFailed;
      const failedChildren = new Set(s.history.filter((h) => h.event.EventType === EventType.SubOrchestrationInstanceFailed).map((h) => h.event.TaskScheduledId));
      for (const h of s.history)
        if (h.event.EventType === EventType.SubOrchestrationInstanceCreated && failedChildren.has(h.event.EventId) && h.event.InstanceId) children.push(h.event.InstanceId);
      const kept = s.history.filter((h) => !removed(h.event));
      const dropped = new Set(s.history.filter((h) => removed(h.event)).flatMap((h) => (h.key ? [h.key] : [])));
      const { store } = this.deps;
      await store.appendHistory(instanceId, s.record.executionId, 0, kept);
      const record: InstanceRecord = { ...s.record, status: 'Running', historyCount: kept.length, lastUpdatedTime: this.clock().toISOString() };
      delete record.output;
      await store.saveInstance(record);
      s.record = record;
      s.history = kept;
      s.appliedKeys = new Set([...s.appliedKeys].filter((k) => !dropped.has(k)));
      const work = openWork(kept.map((h) => h.event), [...s.pending.values()].map((p) => p.event));
      await this.dispatch(s, [...work.activities, ...work.entityCalls]);
      return 'rewound' as const;
    });
    if (result !== 'rewound') return result;
    // Children first: each failed child replays on, and its completion reaches this instance as usual.
    for (const child of children) await this.rewind(child, reason);
    const at = this.clock().toISOString();
    await this.deliver(instanceId, undefined, { EventType: EventType.GenericEvent, EventId: -1, Timestamp: at, Name: 'rewind', Input: JSON.stringify(reason) });
    return 'rewound';
  }

  /**
   * After a restart: queues are rebuilt from tables (this host is the hub's only process, so whatever a
   * queue held came from a dead process and is derivable from committed history and inbox rows).
   */
  async recover(): Promise<number> {
    await Promise.all([this.deps.queues.workItems.clear(), this.deps.queues.control.clear()]);
    await this.deps.entities?.reconcileLocks(async (holder) => {
      const owner = await this.deps.store.getInstance(holder.owner);
      return owner !== undefined && !isTerminal(owner.status) && owner.counters.lock?.requestId === holder.requestId;
    });
    const running = (await this.deps.store.listInstances()).filter((r) => !isTerminal(r.status));
    await Promise.all(running.map((r) => this.serial.run(r.instanceId, () => this.redispatch(r.instanceId))));
    return running.length;
  }

  async idle(): Promise<void> {
    await this.serial.idle();
  }

  private async redispatch(instanceId: string): Promise<void> {
    const s = await this.load(instanceId);
    if (!s) return;
    const work = openWork(s.history.map((h) => h.event), [...s.pending.values()].map((p) => p.event));
    // An entity call that was running when the host died runs again (at least once, like an activity);
    // a signal is not re-sent, as it may have run.
    await this.dispatch(s, [...work.activities, ...work.timers, ...work.subOrchestrations, ...work.entityCalls]);
    this.requestEpisode(instanceId);
  }

  private async load(instanceId: string): Promise<LoadedInstance | undefined> {
    const cached = this.loaded.get(instanceId);
    if (cached) return cached;
    const record = await this.deps.store.getInstance(instanceId);
    if (!record) return undefined;
    const history = await this.deps.store.readHistory(instanceId, record.executionId, record.historyCount);
    const appliedKeys = new Set(history.flatMap((h) => (h.key ? [h.key] : [])));
    const pending = new Map<string, InboxItem>();
    const stale: string[] = [];
    for (const row of await this.deps.store.readInbox(instanceId)) {
      if (row.executionId !== record.executionId || appliedKeys.has(row.key)) stale.push(row.key);
      else pending.set(row.key, { key: row.key, order: row.order, event: row.event });
      this.lastOrder = Math.max(this.lastOrder, row.order);
    }
    if (stale.length > 0) await this.deps.store.deleteInbox(instanceId, stale);
    const loaded: LoadedInstance = { record, history, appliedKeys, pending };
    this.loaded.set(instanceId, loaded);
    return loaded;
  }

  private requestEpisode(instanceId: string): void {
    if (this.episodeQueued.has(instanceId)) return;
    this.episodeQueued.add(instanceId);
    void this.serial
      .run(instanceId, async () => {
        this.episodeQueued.delete(instanceId);
        await this.episodes.run(() => this.episode(instanceId));
      })
      .catch((error: unknown) => this.deps.log.error(`durable: episode of ${instanceId} failed: ${describe(error)}; retrying in 1s`));
  }

  private async episode(instanceId: string): Promise<void> {
    try {
      await this.runEpisode(instanceId);
    } catch (error) {
      // Whatever was half-written is reconciled from tables on the next load; committed state is never lost.
      this.loaded.delete(instanceId);
      setTimeout(() => this.requestEpisode(instanceId), 1000).unref();
      throw error;
    }
  }

  private async runEpisode(instanceId: string): Promise<void> {
    const s = await this.load(instanceId);
    if (!s) return;
    if (isTerminal(s.record.status)) {
      if (s.pending.size > 0) await this.deps.store.deleteInbox(instanceId, [...s.pending.keys()]);
      s.pending.clear();
      return;
    }
    const plan = await planEpisode(s, this.deps.invoke, this.clock());
    if (!plan) return;
    const { store } = this.deps;
    // Commit: history rows first (idempotent upserts beyond the committed count), then the instance row.
    await store.appendHistory(instanceId, s.record.executionId, s.record.historyCount, plan.events);
    const record = plan.record;
    const sectionLock = record.counters.lock;
    record.historyCount = s.record.historyCount + plan.events.length;
    if (plan.restartWith !== undefined) {
      Object.assign(record, { executionId: newExecutionId(), status: 'Pending', historyCount: 0, input: plan.restartWith, counters: { nextSequence: 0, actionCount: 0, retries: [] } });
    }
    await store.saveInstance(record);
    const restarted = plan.restartWith !== undefined;
    s.record = record;
    s.history = restarted ? [] : [...s.history, ...plan.events];
    s.appliedKeys = restarted ? new Set() : new Set([...s.appliedKeys, ...plan.events.flatMap((e) => (e.key ? [e.key] : []))]);
    for (const key of plan.consumedKeys) s.pending.delete(key);
    await store.deleteInbox(instanceId, plan.consumedKeys);
    if (restarted && s.pending.size > 0) {
      await store.deleteInbox(instanceId, [...s.pending.keys()]);
      s.pending.clear();
    }
    // Act on what was committed.
    if (!restarted) await this.dispatch(s, plan.events.map((e) => e.event));
    if (isTerminal(record.status) || restarted) this.releaseLeftSection(instanceId, sectionLock);
    if (isTerminal(record.status)) {
      this.loaded.delete(instanceId);
      // Detached: awaiting the parent's actor while holding an episode slot could deadlock the slots.
      void this.notifyParent(record).catch((error: unknown) => this.deps.log.error(`durable: notifying the parent of ${instanceId} failed: ${describe(error)}`));
    } else if (s.pending.size > 0 || restarted) this.requestEpisode(instanceId);
  }

  private async dispatch(s: LoadedInstance, events: readonly HistoryEvent[]): Promise<void> {
    const { instanceId, executionId } = s.record;
    const now = this.clock().getTime();
    const sends: Promise<unknown>[] = [];
    let work = 0;
    for (const e of events) {
      if (e.EventType === EventType.TaskScheduled) {
        work++;
        sends.push(this.deps.queues.workItems.send({ instanceId, executionId, taskId: e.EventId, name: e.Name ?? '', input: e.Input ?? 'null' }));
      } else if (e.EventType === EventType.TimerCreated && e.FireAt) {
        sends.push(this.deps.queues.control.send({ instanceId, executionId, timerId: e.EventId, fireAt: e.FireAt }, (Date.parse(e.FireAt) - now) / 1000));
      } else if (e.EventType === EventType.EventSent && e.InstanceId && e.Input) {
        this.sendToEntity(instanceId, executionId, e.EventId, e.InstanceId, e);
      } else if (e.EventType === EventType.SubOrchestrationInstanceCreated && e.InstanceId) {
        // Detached: the child's start may need to notify this instance, whose actor is running us.
        const parent: ParentLink = { instanceId, executionId, taskId: e.EventId };
        void this.startChild(e.Name ?? '', e.InstanceId, e.Input, parent).catch((error: unknown) =>
          this.deps.log.error(`durable: starting sub-orchestration ${String(e.InstanceId)} failed: ${describe(error)}`));
      }
    }
    await Promise.all(sends);
    if (work > 0) this.deps.onWorkItems?.();
  }

  /**
   * Runs a callEntity/signalEntity request, a lock request or a release. A call's response and a lock's
   * grant come back as an EventRaised named by the request id, keyed by the task so a re-sent request
   * (after a restart) is recorded once.
   */
  private sendToEntity(instanceId: string, executionId: string, taskId: number, entityId: string, event: HistoryEvent): void {
    const entities = this.deps.entities;
    const request = parseEntityMessage(event);
    if (!entities || !request) return;
    const respond = (input: string): Promise<DeliverResult> =>
      this.deliver(instanceId, executionId, { EventType: EventType.EventRaised, EventId: -1, Timestamp: this.clock().toISOString(), Name: request.id, Input: input }, `e-${executionId}-${taskId}`);
    const holder = { owner: instanceId, requestId: request.id };
    if (request.release) {
      void entities.release(holder, [entityId]).catch((error: unknown) => this.deps.log.error(`durable: releasing ${entityId} for ${instanceId} failed: ${describe(error)}`));
      return;
    }
    if (request.lockset) {
      void entities
        .acquire(holder, request.lockset)
        .then(() => respond(JSON.stringify({ result: JSON.stringify('Lock Acquisition Completed') })))
        .catch((error: unknown) => this.deps.log.error(`durable: locking entities for ${instanceId} failed: ${describe(error)}`));
      return;
    }
    const operation = { id: request.id, name: request.op ?? '', signal: request.signal === true, input: request.input };
    if (operation.signal) return entities.signal(entityId, operation, instanceId);
    void entities
      .run(entityId, operation, instanceId)
      .catch((error: unknown) => ({ isError: true, result: JSON.stringify({ message: describe(error) }) }))
      .then((outcome) => respond(JSON.stringify({ result: outcome.result ?? 'null', ...(outcome.isError ? { exceptionType: 'Error' } : {}) })))
      .catch((error: unknown) => this.deps.log.error(`durable: entity ${entityId} response to ${instanceId} failed: ${describe(error)}`));
  }

  /** An orchestration that finished or restarted inside a critical section leaves it: its locks are released. */
  private releaseLeftSection(instanceId: string, lock: SectionLock | undefined): void {
    if (!lock || !this.deps.entities) return;
    void this.deps.entities
      .release({ owner: instanceId, requestId: lock.requestId }, lock.schedulerIds)
      .catch((error: unknown) => this.deps.log.error(`durable: releasing the locks of ${instanceId} failed: ${describe(error)}`));
  }

  private async startChild(name: string, childId: string, input: string | undefined, parent: ParentLink): Promise<void> {
    const result = await this.start(name, childId, input, parent);
    if (result === 'exists') {
      await this.deliver(parent.instanceId, parent.executionId, {
        EventType: EventType.SubOrchestrationInstanceFailed, EventId: -1, Timestamp: this.clock().toISOString(), TaskScheduledId: parent.taskId,
        ...subOrchestrationFailure(`An orchestration with instance id '${childId}' is already running.`),
      }, subKey(parent.executionId, parent.taskId));
      return;
    }
    const child = await this.deps.store.getInstance(childId);
    if (child && isTerminal(child.status)) await this.notifyParent(child); // finished before a crash lost the notice
  }

  private async notifyParent(child: InstanceRecord): Promise<void> {
    if (!child.parentInstanceId || child.parentExecutionId === undefined || child.parentTaskId === undefined) return;
    const at = this.clock().toISOString();
    const event: HistoryEvent =
      child.status === 'Completed'
        ? { EventType: EventType.SubOrchestrationInstanceCompleted, EventId: -1, Timestamp: at, TaskScheduledId: child.parentTaskId, Result: child.output ?? 'null' }
        : { EventType: EventType.SubOrchestrationInstanceFailed, EventId: -1, Timestamp: at, TaskScheduledId: child.parentTaskId, ...subOrchestrationFailure(String(parseJsonText(child.output) ?? child.status)) };
    await this.deliver(child.parentInstanceId, child.parentExecutionId, event, subKey(child.parentExecutionId, child.parentTaskId));
  }
}

export const taskKey = (executionId: string, taskId: number): string => `t-${executionId}-${taskId}`;
export const subKey = (executionId: string, taskId: number): string => `s-${executionId}-${taskId}`;
export const timerKey = (executionId: string, timerId: number): string => `f-${executionId}-${timerId}`;

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
