import { app, type InvocationContext } from '@azure/functions';
import { backupChangedLogs, witnessChangedHeads } from '../infra/backup/logBackup';
import { describeUnexpected } from '../infra/http/problem';
import { logBackupDependencies } from './composition';
import { DEFAULT_SCHEDULES, registrationSettings } from './settings';

export const BACKUP_LOGS = 'backupLogs';
export const WITNESS_HEADS = 'witnessHeads';
/** Hourly, on the hour; `BACKUP_SCHEDULE` (six-field NCRONTAB) overrides it. */
export const DEFAULT_BACKUP_SCHEDULE = DEFAULT_SCHEDULES.BACKUP_SCHEDULE;
/** Every five minutes; `WITNESS_SCHEDULE` overrides it. */
export const DEFAULT_WITNESS_SCHEDULE = DEFAULT_SCHEDULES.WITNESS_SCHEDULE;

/** Heads this process has witnessed, so a quiet workspace costs no blob listing on the next run. */
const witnessed = new Map<string, number>();

export async function backupLogsTimer(_timer: unknown, context: InvocationContext): Promise<void> {
  try {
    const report = await backupChangedLogs(logBackupDependencies());
    context.log(`${BACKUP_LOGS}: ${report.backedUp} of ${report.checked} logs backed up`);
  } catch (error) {
    context.error(`${BACKUP_LOGS} failed: ${describeUnexpected(error)}`);
    throw error;
  }
}

export async function witnessHeadsTimer(_timer: unknown, context: InvocationContext): Promise<void> {
  try {
    const report = await witnessChangedHeads(logBackupDependencies(), witnessed);
    if (report.witnessed > 0) context.log(`${WITNESS_HEADS}: ${report.witnessed} of ${report.checked} heads witnessed`);
  } catch (error) {
    context.error(`${WITNESS_HEADS} failed: ${describeUnexpected(error)}`);
    throw error;
  }
}

const { schedule } = registrationSettings();
app.timer(BACKUP_LOGS, { schedule: schedule('BACKUP_SCHEDULE'), handler: backupLogsTimer });
app.timer(WITNESS_HEADS, { schedule: schedule('WITNESS_SCHEDULE'), handler: witnessHeadsTimer });
