import type { HostLogger } from '../hostExtension';
import { EventType } from './historyEvents';
import { Poller } from './concurrency';
import { timerKey, type OrchestrationEngine } from './orchestrationEngine';
import type { Received, TimerMessage, WorkQueues } from './workQueues';

/** Queue delays are whole seconds (rounded down when sent); a timer surfacing this close to its time waits in memory. */
const EARLY_TOLERANCE_MS = 1500;

/** Delivers durable timers: each is a control-queue message hidden until (about) its fire time. */
export class TimerPump {
  private readonly poller: Poller;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly queues: WorkQueues, private readonly engine: OrchestrationEngine, private readonly log: HostLogger) {
    this.poller = new Poller(() => this.tick(), 50, 250, (e) => log.warn(`durable: control queue: ${e instanceof Error ? e.message : String(e)}`));
  }

  start(): void {
    this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
    await Promise.allSettled([...this.inFlight]);
  }

  private async tick(): Promise<number> {
    const messages = await this.queues.control.receive(32, 30);
    for (const message of messages) {
      const task = this.fire(message).catch((e: unknown) => this.log.error(`durable: timer ${message.body.timerId} of ${message.body.instanceId}: ${e instanceof Error ? e.message : String(e)}`));
      const tracked = task.finally(() => this.inFlight.delete(tracked));
      this.inFlight.add(tracked);
    }
    return messages.length;
  }

  private async fire(message: Received<TimerMessage>): Promise<void> {
    const timer = message.body;
    const remaining = Date.parse(timer.fireAt) - Date.now();
    if (remaining > EARLY_TOLERANCE_MS) {
      await this.queues.control.send(timer, remaining / 1000); // longer than the queue's maximum delay
    } else {
      if (remaining > 0) await new Promise((r) => setTimeout(r, remaining));
      await this.engine.deliver(timer.instanceId, timer.executionId, {
        EventType: EventType.TimerFired, EventId: -1, Timestamp: new Date().toISOString(), TimerId: timer.timerId, FireAt: timer.fireAt,
      }, timerKey(timer.executionId, timer.timerId));
    }
    await this.queues.control.delete(message.messageId, message.popReceipt);
  }
}
