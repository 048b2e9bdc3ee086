import type { ExtensionContext, HostLogger } from '../hostExtension';
import { HTTP_ACTIVITY, runDurableHttp } from './durableHttp';
import { activityFailure, EventType, toJsonText, type HistoryEvent } from './historyEvents';
import { Poller, Semaphore } from './concurrency';
import { taskKey, type OrchestrationEngine } from './orchestrationEngine';
import type { Received, WorkItem, WorkQueues } from './workQueues';

/** How long a received work item stays hidden; an activity running longer is guarded by `running`. */
const WORK_ITEM_VISIBILITY_SECONDS = 300;

export interface ActivityWorkerDeps {
  readonly queues: WorkQueues;
  readonly engine: OrchestrationEngine;
  readonly invoke: ExtensionContext['invoke'];
  readonly log: HostLogger;
  readonly maxConcurrentActivities: number;
}

/**
 * Runs activities from the work-item queue, up to a bound at once, so one slow activity never blocks the
 * others. An activity runs only while its completion is recorded nowhere; its result is recorded (an
 * inbox row of its instance) before the work item is deleted. A crash between running and recording runs
 * it again after the restart: activities must be idempotent.
 */
export class ActivityWorker {
  private readonly slots: Semaphore;
  private readonly running = new Set<string>();
  private readonly poller: Poller;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly deps: ActivityWorkerDeps) {
    this.slots = new Semaphore(deps.maxConcurrentActivities);
    this.poller = new Poller(() => this.tick(), 25, 500, (e) => deps.log.warn(`durable: work-item queue: ${describe(e)}`));
  }

  start(): void {
    this.poller.start();
  }

  nudge(): void {
    this.poller.nudge();
  }

  /** Stops taking work; waits a short grace period for running activities (unrecorded ones run again after a restart). */
  async stop(graceMs = 2_000): Promise<void> {
    await this.poller.stop();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
  }

  private async tick(): Promise<number> {
    const free = this.slots.free;
    if (free === 0) return 0;
    const messages = await this.deps.queues.workItems.receive(free, WORK_ITEM_VISIBILITY_SECONDS);
    for (const message of messages) {
      const task = this.slots.run(() => this.handle(message)).catch((e: unknown) => this.deps.log.error(`durable: activity ${message.body.name}: ${describe(e)}`));
      const tracked = task.finally(() => {
        this.inFlight.delete(tracked);
        this.poller.nudge();
      });
      this.inFlight.add(tracked);
    }
    return messages.length;
  }

  private async handle(message: Received<WorkItem>): Promise<void> {
    const item = message.body;
    const id = taskKey(item.executionId, item.taskId) + `@${item.instanceId}`;
    const { queues, engine } = this.deps;
    if (this.running.has(id) || !(await engine.isTaskOpen(item.instanceId, item.executionId, item.taskId))) {
      await queues.workItems.delete(message.messageId, message.popReceipt);
      return;
    }
    this.running.add(id);
    try {
      const event = await this.execute(item);
      await withRetries(() => engine.deliver(item.instanceId, item.executionId, event, taskKey(item.executionId, item.taskId)));
      await queues.workItems.delete(message.messageId, message.popReceipt);
    } finally {
      this.running.delete(id);
    }
  }

  private async execute(item: WorkItem): Promise<HistoryEvent> {
    const at = () => new Date().toISOString();
    try {
      const returned = item.name === HTTP_ACTIVITY ? await runDurableHttp(JSON.parse(item.input)) : (await this.deps.invoke(item.name, { json: item.input })).returnValue;
      return { EventType: EventType.TaskCompleted, EventId: -1, Timestamp: at(), TaskScheduledId: item.taskId, Result: toJsonText(returned) };
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      return { EventType: EventType.TaskFailed, EventId: -1, Timestamp: at(), TaskScheduledId: item.taskId, ...activityFailure(item.name, e) };
    }
  }
}

async function withRetries<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= attempts) throw error;
      await new Promise((r) => setTimeout(r, 200 * i));
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
