import { z } from 'zod';
import { LocalHostConfigError } from '../problems';
import type { ExtensionContext, HostExtension, RegisteredBinding, RpcTypedData } from '../hostExtension';
import { ActivityWorker } from './activityWorker';
import { EntityRunner } from './entities';
import { clientBinding, hostOrigin, WEBHOOK_PREFIX } from './clientBinding';
import { ClientServer, sendUnavailable } from './clientServer';
import { InstanceStore } from './instanceStore';
import { OrchestrationEngine } from './orchestrationEngine';
import { taskHubNames } from './taskHub';
import { TimerPump } from './timerPump';
import { WorkQueues } from './workQueues';

export interface DurableExtensionOptions {
  /** Overrides the DURABLE_TASK_HUB setting. */
  readonly taskHub?: string;
  readonly maxConcurrentActivities?: number;
  readonly maxConcurrentOrchestrations?: number;
}

const bound = z.coerce.number().int().min(1).max(1000);
const settingsSchema = z.object({
  DURABLE_TASK_HUB: z.string().optional(),
  DURABLE_MAX_CONCURRENT_ACTIVITIES: bound.optional(),
  DURABLE_MAX_CONCURRENT_ORCHESTRATIONS: bound.optional(),
});

interface Running {
  readonly hub: string;
  readonly engine: OrchestrationEngine;
  readonly worker: ActivityWorker;
  readonly timers: TimerPump;
  readonly server: ClientServer;
  readonly entities: EntityRunner;
}

/**
 * The Durable Functions engine of the local host: runs orchestrationTrigger functions through
 * durable-functions' own replay (history in Azurite Tables), activityTrigger functions from a work-item
 * queue, durable timers from a control queue, and serves the durableClient binding and its HTTP API.
 */
export function createDurableExtension(options: DurableExtensionOptions = {}): HostExtension {
  let running: Running | undefined;
  return {
    name: 'durable',
    triggerTypes: ['orchestrationTrigger', 'activityTrigger', 'entityTrigger'],
    inputBindingTypes: ['durableClient', 'orchestrationClient'],

    async start(ctx: ExtensionContext): Promise<void> {
      const parsed = settingsSchema.safeParse(ctx.settings);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new LocalHostConfigError(`Setting ${String(issue?.path[0] ?? 'DURABLE_*')} ${issue?.message ?? 'is invalid'}.`);
      }
      const settings = parsed.data;
      const names = taskHubNames(options.taskHub ?? settings.DURABLE_TASK_HUB);
      const store = new InstanceStore(ctx.storageConnectionString, names);
      const queues = new WorkQueues(ctx.storageConnectionString, names);
      await Promise.all([store.ensureTables(), queues.ensureQueues()]);

      const orchestrators = new Map(
        ctx.functions.filter((f) => f.triggerType.toLowerCase() === 'orchestrationtrigger').map((f) => [f.name.toLowerCase(), f.name] as const),
      );
      const invoke: ExtensionContext['invoke'] = (name, trigger, metadata) => ctx.invoke(name, trigger, metadata);
      const entityFunctions = new Map(
        ctx.functions.filter((f) => f.triggerType.toLowerCase() === 'entitytrigger').map((f) => [f.name.toLowerCase(), f.name] as const),
      );
      const entities = new EntityRunner(ctx.storageConnectionString, `${names.hub}Entities`, entityFunctions, invoke, ctx.log);
      await entities.ensureTable();
      let worker: ActivityWorker | undefined;
      const engine = new OrchestrationEngine({
        store, queues, invoke, log: ctx.log,
        maxConcurrentEpisodes: options.maxConcurrentOrchestrations ?? settings.DURABLE_MAX_CONCURRENT_ORCHESTRATIONS ?? 8,
        onWorkItems: () => worker?.nudge(),
        entities,
      });
      worker = new ActivityWorker({
        queues, engine, invoke, log: ctx.log,
        maxConcurrentActivities: options.maxConcurrentActivities ?? settings.DURABLE_MAX_CONCURRENT_ACTIVITIES ?? 16,
      });
      const timers = new TimerPump(queues, engine, ctx.log);
      const server = new ClientServer({ engine, store, entities, orchestrators, port: ctx.hostPort });
      const resumed = await engine.recover();
      worker.start();
      timers.start();
      running = { hub: names.hub, engine, worker, timers, server, entities };
      ctx.log.info(`durable: task hub "${names.hub}", ${orchestrators.size} orchestrator(s), ${resumed} in-flight orchestration(s) resumed; management API on ${hostOrigin(ctx.hostPort)}${WEBHOOK_PREFIX} (key generated for this start)`);
    },

    async inputBindingValue(_binding: RegisteredBinding): Promise<RpcTypedData> {
      if (!running) throw new Error('The Durable extension has not started.');
      return { json: JSON.stringify(clientBinding(running.hub, running.server.port, running.server.key)) };
    },

    httpRoutes: {
      prefix: WEBHOOK_PREFIX,
      handle(req, res) {
        if (running) void running.server.handle(req, res);
        else {
          req.resume();
          sendUnavailable(res);
        }
      },
    },

    async stop(): Promise<void> {
      const r = running;
      running = undefined;
      if (!r) return;
      await Promise.all([r.worker.stop(), r.timers.stop()]);
      await r.engine.idle();
      await r.entities.idle();
    },
  };
}
