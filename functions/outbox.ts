import { app } from '@azure/functions';
import { describeUnexpected } from '../infra/http/problem';
import type { OutboxDispatcher } from '../infra/messaging/outboxDispatcher';
import { appComposition } from './composition';
import { DEFAULT_SCHEDULES, registrationSettings } from './settings';

export const OUTBOX_TIMER = 'outboxDispatch';
/** Every five seconds by default; `OUTBOX_SCHEDULE` (six-field NCRONTAB) overrides it. */
export const DEFAULT_OUTBOX_SCHEDULE = DEFAULT_SCHEDULES.OUTBOX_SCHEDULE;

/** This process's dispatcher: the timer runs it, and the run starter nudges it after an append. */
export const getOutboxDispatcher = (): Promise<OutboxDispatcher> => appComposition().outboxDispatcher();

app.timer(OUTBOX_TIMER, {
  schedule: registrationSettings().schedule('OUTBOX_SCHEDULE'),
  handler: async (_timer, context) => {
    try {
      const report = await (await getOutboxDispatcher()).dispatchAll();
      if (report.published > 0 || report.failed.length > 0)
        context.log(`outbox: ${report.published} events published from ${report.workspaces} workspaces; failed: ${report.failed.join(', ') || 'none'}`);
    } catch (error) {
      context.error(`outbox: dispatch failed: ${describeUnexpected(error)}`);
      throw error;
    }
  },
});
