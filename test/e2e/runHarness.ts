import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TableClient } from '@azure/data-tables';
import { mintDevToken, devIssuerSettings } from '../../infra/identity/devIssuer';
import { type ApiReply, callApi } from '../../localhost/apiCall';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../support/localHostProcess';

export const agentFixture = (file: string): string => readFileSync(path.join(__dirname, '..', 'fixtures', 'agent', file), 'utf8');

export type Reply = ApiReply;

/** Settings for one isolated backend: its own tables, task hub, key files; the test run's Azurite. */
export function backendEnv(): Record<string, string> & { DURABLE_TASK_HUB: string; DEV_ISSUER_KEY_DIR: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-e2e-'));
  // Every setting the sample lists, with its safe local value; then this backend's own storage names and keys.
  const sample = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> };
  const ownTables = Object.fromEntries(Object.keys(sample.Values).filter((k) => k.endsWith('_TABLE')).map((k) => [k, uniqueName(k.split('_')[0] ?? 't')]));
  return {
    ...sample.Values,
    ...ownTables,
    AzureWebJobsStorage: azuriteConnectionString(),
    DURABLE_TASK_HUB: uniqueName('runs'),
    EVENT_LOG_TABLE: uniqueName('events'),
    VAULT_TABLE: uniqueName('vault'),
    GATEWAY_BEARER_TABLE: uniqueName('bearers'),
    VAULT_MASTER_KEY_FILE: path.join(dir, 'master.key'),
    DEV_ISSUER_KEY_DIR: path.join(dir, 'issuer'),
  };
}

export async function startBackend(env: Record<string, string>): Promise<LocalHostProcess> {
  // RUNS_E2E_APP: a built copy of the app to host instead of the project root (for bisecting a broken tree).
  return startLocalHost({ env, ...(process.env.RUNS_E2E_APP ? { app: process.env.RUNS_E2E_APP } : {}) });
}

export async function tokenFor(user: string, env: Record<string, string>): Promise<string> {
  return mintDevToken(user, devIssuerSettings({ DEV_ISSUER_KEY_DIR: env.DEV_ISSUER_KEY_DIR }));
}

/** The public API over HTTP, as a user. */
export function apiClient(base: () => string, token: string) {
  return function call(method: string, route: string, body?: unknown): Promise<Reply> {
    return callApi(base(), token, method, route, body);
  };
}

export type Call = ReturnType<typeof apiClient>;

export interface RunView {
  runId: string;
  status: string;
  failure?: string;
  tornDown: boolean;
  phases: { phase: string; turn?: number; status: string; reason?: string }[];
  events: { version: number; sequence: number; type: string; data: Record<string, unknown> }[];
}

export async function waitForRun(call: Call, ws: string, runId: string, done: (run: RunView) => boolean, timeoutMs = 90_000): Promise<RunView> {
  const until = Date.now() + timeoutMs;
  let last: RunView | undefined;
  while (Date.now() < until) {
    try {
      const reply = await call('GET', `/api/workspaces/${ws}/runs/${runId}`);
      if (reply.status === 200) {
        last = reply.json as RunView;
        if (done(last)) return last;
      }
    } catch {
      // the host is restarting
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new Error(`run ${runId} did not reach the expected state; last seen: ${JSON.stringify(last)}`);
}

export const isFinished = (run: RunView): boolean => ['Completed', 'Failed', 'Cancelled'].includes(run.status);

/** Every row of the task hub's Durable tables (history and instances), as text. */
export async function durableTexts(hub: string): Promise<{ where: string; text: string }[]> {
  const out: { where: string; text: string }[] = [];
  for (const suffix of ['History', 'Instances']) {
    const table = TableClient.fromConnectionString(azuriteConnectionString(), `${hub.toLowerCase().replace(/[^a-z0-9]/g, '')}${suffix}`, { allowInsecureConnection: true });
    try {
      for await (const row of table.listEntities()) out.push({ where: `${suffix}/${String(row.partitionKey)}/${String(row.rowKey)}`, text: JSON.stringify(row) });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    }
  }
  return out;
}

export async function instanceIds(hub: string): Promise<string[]> {
  return [...new Set((await durableTexts(hub)).filter((r) => r.where.startsWith('Instances/')).map((r) => r.where.split('/')[1] ?? ''))];
}
