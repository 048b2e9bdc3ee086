import { parseArgs } from 'node:util';
import { isDomainError } from '../domain/errors';
import { restoreWorkspace } from '../infra/backup/logBackup';
import { describeUnexpected } from '../infra/http/problem';
import { appTableClient, compose } from './composition';
import { SettingsError, loadSettings } from './settings';

export const RESTORE_USAGE =
  'Usage: npm run restore -- --workspace <id> --from <backup blob name | latest> [--table <empty table>] [--backup-keys-only]';

/**
 * `npm run restore`: rebuilds one workspace's log from a backup in the archive into a table where that
 * workspace has no rows (the event-log table after a loss, or `--table` for a side-by-side copy). Prints one
 * line and answers an exit code: 0 restored, 1 refused or failed, 2 bad usage.
 */
export async function runRestore(argv: readonly string[], env: Readonly<Record<string, string | undefined>>, out: (line: string) => void): Promise<number> {
  let values: { workspace?: string | undefined; from?: string | undefined; table?: string | undefined; 'backup-keys-only'?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { workspace: { type: 'string' }, from: { type: 'string' }, table: { type: 'string' }, 'backup-keys-only': { type: 'boolean' } },
      strict: true,
    }));
  } catch {
    out(RESTORE_USAGE);
    return 2;
  }
  if (!values.workspace || !values.from) {
    out(RESTORE_USAGE);
    return 2;
  }
  try {
    const settings = loadSettings(env);
    const platform = compose(settings);
    const table = appTableClient(settings, values.table ?? settings.EVENT_LOG_TABLE);
    const result = await restoreWorkspace(
      { archive: platform.archive(), keys: platform.backupKeys() },
      // --backup-keys-only: the platform's key ring is lost too; the keys the backup carries are authenticated by
      // its encryption under the workspace's backup key, so they alone still decide.
      { table, projectionSeal: await platform.projectionSeal(), ...(values['backup-keys-only'] ? {} : { platformCheckpointer: platform.signing().checkpointer }) },
      { workspaceId: values.workspace, from: values.from },
    );
    out(`restored ${result.records} records of ${values.workspace} from ${result.name} into ${table.tableName}; chain and signatures verify; ${result.projections} projections rebuilt`);
    if (result.witnessed !== undefined)
      out(`warning: the archive witnessed the log at ${result.witnessed}; records ${result.records + 1}..${result.witnessed} are lost, and verify names the gap`);
    return 0;
  } catch (error) {
    const unreachable = (error as { code?: unknown }).code === 'ECONNREFUSED' ? ' (storage is not reachable; locally, `npm start` must be running)' : '';
    out(`restore refused: ${isDomainError(error) || error instanceof SettingsError ? error.message : describeUnexpected(error)}${unreachable}`);
    return 1;
  }
}
