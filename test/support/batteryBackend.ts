import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAzurite, type RunningAzurite } from '../../localhost/azuriteProcess';
import { mintDevToken, devIssuerSettings } from '../../infra/identity/devIssuer';
import { type ApiReply, callApi } from '../../localhost/apiCall';
import { LeakScanner, type LeakReport } from './leakScan';
import { projectRoot, startLocalHost, type LocalHostProcess } from './localHostProcess';

/**
 * One backend of its own for a battery test: a dedicated Azurite persisting under a folder (so it can be stopped
 * and started again on the same ports with its data), the local host as a child process (its sandboxes under the
 * machine's shared root), and every line the host logged across restarts. Fault tests each get one (issue 10: "each fault test gets its own Azurite").
 */
export interface BatteryBackend {
  readonly dir: string;
  readonly env: Record<string, string>;
  azurite: RunningAzurite;
  host: LocalHostProcess | undefined;
  url(): string;
  /** Everything every host process of this backend wrote to stdout and stderr so far. */
  logs(): string;
  startHost(extraEnv?: Record<string, string>): Promise<LocalHostProcess>;
  killHost(): Promise<void>;
  stopAzurite(): Promise<void>;
  startAzurite(): Promise<void>;
  token(user: string): Promise<string>;
  call(token: string, method: string, route: string, body?: unknown): Promise<ApiReply>;
  /** Tables, blobs, queues, Azurite's files, the sandbox and credential roots, and the host's logs. */
  leakScan(secrets: Record<string, string>): Promise<LeakReport & { text: string }>;
  close(): Promise<void>;
}

const CREDENTIAL_ROOT = '/dev/shm/dp-credentials';
/** LocalProcessSandboxHost's default root, shared by every local host on this machine. */
export const SANDBOX_ROOT = path.join(tmpdir(), 'dp-sandboxes');

export async function startBatteryBackend(options: { app?: string; hostEnv?: Record<string, string> } = {}): Promise<BatteryBackend> {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-battery-'));
  // Sandbox uids traverse the sandbox root's parents (never list them); mkdtemp makes 0700.
  chmodSync(dir, 0o711);
  const data = path.join(dir, 'azurite');
  // The host keeps the machine's TMPDIR: its startup sweep judges every credential directory on the shared tmpfs by
  // an owner file under ITS sandbox root, so a host with its own root would remove other hosts' live credentials.
  const hostTmp = SANDBOX_ROOT;
  let azurite = await startAzurite({ location: data, projectRoot });
  const sample = JSON.parse(readFileSync(path.join(projectRoot, 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> };
  const env: Record<string, string> = {
    ...sample.Values,
    AzureWebJobsStorage: azurite.connectionString,
    DURABLE_TASK_HUB: 'battery',
    VAULT_MASTER_KEY_FILE: path.join(dir, 'master.key'),
    DEV_ISSUER_KEY_DIR: path.join(dir, 'issuer'),
    ...options.hostEnv,
  };
  let logged = '';
  const backend: BatteryBackend = {
    dir,
    env,
    azurite,
    host: undefined,
    url() {
      if (!backend.host) throw new Error('the host is not running');
      return backend.host.url;
    },
    logs: () => logged + (backend.host ? backend.host.stdout() + backend.host.stderr() : ''),
    async startHost(extraEnv = {}) {
      backend.host = await startLocalHost({ env: { ...env, ...extraEnv }, ...(options.app ? { app: options.app } : {}) });
      return backend.host;
    },
    async killHost() {
      const host = backend.host;
      if (!host) return;
      host.child.kill('SIGKILL');
      await host.stop();
      logged += host.stdout() + host.stderr();
      backend.host = undefined;
    },
    async stopAzurite() {
      await backend.azurite.stop();
    },
    async startAzurite() {
      azurite = await startAzurite({ location: data, projectRoot, ports: backend.azurite.ports });
      backend.azurite = azurite;
    },
    token: (user) => mintDevToken(user, devIssuerSettings({ DEV_ISSUER_KEY_DIR: env.DEV_ISSUER_KEY_DIR })),
    call: (token, method, route, body) => callApi(backend.url(), token, method, route, body),
    async leakScan(secrets) {
      const scanner = new LeakScanner(secrets);
      await scanner.tables(azurite.connectionString);
      await scanner.blobs(azurite.connectionString);
      await scanner.queues(azurite.connectionString);
      scanner.files('azurite-disk', data);
      scanner.files('sandbox-root', hostTmp);
      scanner.files('credential-root', CREDENTIAL_ROOT);
      scanner.scan('host-log', 'stdout+stderr', backend.logs());
      return { ...scanner.report, text: scanner.summary(path.basename(dir)) };
    },
    async close() {
      if (backend.host) {
        const host = backend.host;
        await host.stop();
        logged += host.stdout() + host.stderr();
        backend.host = undefined;
      }
      await backend.azurite.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return backend;
}
