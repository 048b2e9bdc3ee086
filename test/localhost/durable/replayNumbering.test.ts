import * as df from 'durable-functions';
import { describe, expect, it } from 'vitest';
import { EventType, type HistoryEvent } from '../../../localhost/durable/historyEvents';
import { planEpisode, type LoadedInstance } from '../../../localhost/durable/episodeRunner';
import type { ExtensionContext } from '../../../localhost/hostExtension';
import { sanitizeTaskHubName, taskHubNames } from '../../../localhost/durable/taskHub';

// durable-functions' own orchestrator wrapper, the one df.app.orchestration registers (no package exports map).
const { createOrchestrator } = require('durable-functions/lib/src/util/testingUtils') as {
  createOrchestrator(fn: (context: df.OrchestrationContext) => Generator<unknown, unknown, unknown>): (trigger: unknown, context: unknown) => Promise<unknown>;
};

/** Runs episodes in memory against the real replay executor, committing plans the way the engine does. */
function replayHarness(fn: (context: df.OrchestrationContext) => Generator<unknown, unknown, unknown>) {
  const handler = createOrchestrator(fn);
  const invoke: ExtensionContext['invoke'] = async (_name, trigger) => {
    const payload = JSON.parse((trigger as { json: string }).json) as unknown;
    // A fresh context per episode, and a JSON round trip, as the host's invocation model gives.
    const state = await handler(payload, new df.DummyOrchestrationContext());
    return { returnValue: JSON.parse(JSON.stringify(state)) as unknown, outputs: {} };
  };
  const at = new Date('2026-01-01T00:00:00Z').toISOString();
  const loaded: LoadedInstance = {
    record: {
      instanceId: 'i1', name: 'orch', executionId: 'e1', status: 'Pending', createdTime: at, lastUpdatedTime: at, historyCount: 0,
      counters: { nextSequence: 0, actionCount: 0, retries: [] }, input: 'null',
    },
    history: [], appliedKeys: new Set(), pending: new Map(),
  };
  let order = 0;
  return {
    loaded,
    deliver(key: string, event: Omit<HistoryEvent, 'EventId' | 'Timestamp'>): void {
      loaded.pending.set(key, { key, order: ++order, event: { EventId: -1, Timestamp: at, ...event } as HistoryEvent });
    },
    async episode(): Promise<HistoryEvent[]> {
      const plan = await planEpisode(loaded, invoke, new Date(Date.parse(at) + order * 1000));
      if (!plan) return [];
      loaded.record = { ...plan.record, historyCount: loaded.record.historyCount + plan.events.length };
      loaded.history.push(...plan.events);
      for (const key of plan.consumedKeys) loaded.pending.delete(key);
      return plan.events.map((e) => e.event);
    },
    scheduled(name: string): number[] {
      return loaded.history.filter((h) => h.event.EventType === EventType.TaskScheduled && h.event.Name === name).map((h) => h.event.EventId);
    },
  };
}

const failure = (id: number) => ({ EventType: EventType.TaskFailed, TaskScheduledId: id, Reason: 'boom', FailureDetails: { ErrorType: 'Error', ErrorMessage: 'boom' } });
const completion = (id: number, value: unknown) => ({ EventType: EventType.TaskCompleted, TaskScheduledId: id, Result: JSON.stringify(value) });

describe('Durable engine: task numbering agrees with durable-functions replay', () => {
  it('replays a retry failure in its own episode when user code could resume first in the same batch', async () => {
    const h = replayHarness(function* (context) {
      const retried = context.df.callActivityWithRetry('A', new df.RetryOptions(100, 3), 'a');
      const quick = context.df.callActivity('B', 'b');
      yield context.df.Task.any([retried, quick]);
      const c: unknown = yield context.df.callActivity('C', 'c');
      const a: unknown = yield retried;
      return [c, a];
    });
    await h.episode();
    expect([h.scheduled('A'), h.scheduled('B')]).toEqual([[0], [1]]);

    // B's completion resumes user code, which yields C; A's failure allocates a retry timer. Both pending at once:
    h.deliver('t-1', completion(1, 'b!'));
    h.deliver('t-0', failure(0));
    await h.episode();
    expect(h.scheduled('C')).toEqual([2]); // numbered before the retry timer, as the executor does
    expect(h.loaded.pending.has('t-0')).toBe(true);
    const timer = (await h.episode()).find((e) => e.EventType === EventType.TimerCreated);
    expect(timer?.EventId).toBe(3);

    h.deliver('f-3', { EventType: EventType.TimerFired, TimerId: 3, FireAt: timer?.FireAt ?? '' });
    await h.episode();
    expect(h.scheduled('A')).toEqual([0, 4]);
    h.deliver('t-2', completion(2, 'c!'));
    h.deliver('t-4', completion(4, 'a!'));
    await h.episode();
    await h.episode();
    expect(h.loaded.record).toMatchObject({ status: 'Completed', output: JSON.stringify(['c!', 'a!']) });
  });

  it('fails the orchestration with the orchestrator error, and reports the failure as its output', async () => {
    const h = replayHarness(function* (context) {
      yield context.df.callActivity('A', 1);
      throw new Error('orchestrator gave up');
    });
    await h.episode();
    h.deliver('t-0', completion(0, 1));
    await h.episode();
    expect(h.loaded.record.status).toBe('Failed');
    expect(JSON.parse(h.loaded.record.output ?? '""')).toContain('orchestrator gave up');
  });

  it('derives storage names that are valid for tables and queues from any DURABLE_TASK_HUB', () => {
    expect(taskHubNames('My_Hub-1')).toMatchObject({ hub: 'myhub1', instancesTable: 'myhub1Instances', controlQueue: 'myhub1-control', workItemQueue: 'myhub1-workitems' });
    expect(sanitizeTaskHubName('123abc')).toBe('abc');
    expect(sanitizeTaskHubName('--')).toBe('testhubname');
    expect(sanitizeTaskHubName('x'.repeat(80))).toHaveLength(45);
  });
});
