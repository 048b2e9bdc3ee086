/** Storage names of one task hub: two tables and two queues, all derived from the hub name. */
export interface TaskHubNames {
  readonly hub: string;
  readonly instancesTable: string;
  readonly historyTable: string;
  readonly controlQueue: string;
  readonly workItemQueue: string;
}

export const DEFAULT_TASK_HUB = 'testhubname';

/**
 * Lower-cases the setting and keeps letters and digits, so the name is valid both as a table name
 * (alphanumeric, starting with a letter) and as a queue-name prefix (lower-case, no double hyphens).
 * Queue names are at most 63 characters, so the hub is cut to 45 to leave room for "-workitems".
 */
export function sanitizeTaskHubName(raw: string | undefined): string {
  const cleaned = (raw ?? '').toLowerCase().replace(/[^a-z0-9]/g, '');
  const startsWithLetter = cleaned.replace(/^[0-9]+/, '');
  const name = startsWithLetter.slice(0, 45);
  return name.length >= 3 ? name : DEFAULT_TASK_HUB;
}

export function taskHubNames(rawHubName: string | undefined): TaskHubNames {
  const hub = sanitizeTaskHubName(rawHubName);
  return {
    hub,
    instancesTable: `${hub}Instances`,
    historyTable: `${hub}History`,
    controlQueue: `${hub}-control`,
    workItemQueue: `${hub}-workitems`,
  };
}
