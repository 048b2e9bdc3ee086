import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DevIssuerRefusedError, devIssuerSettings, mintDevToken } from '../infra/identity/devIssuer';
import { startAzurite, type AzuritePorts, type RunningAzurite } from './azuriteProcess';
import { devIssuerRoutes } from './devIssuerRoutes';
import type { HostExtension, HostLogger } from './hostExtension';
import { consoleLogger, createLocalHost, type LocalHost } from './localHost';
import { LocalHostConfigError } from './problems';
import { hostSettings, isDevelopmentStorage, mergeSettings, readLocalSettings } from './settings';
import { findProjectRoot } from '../infra/system/projectRoot';

async function ensurePortFree(port: number, what: string, setting: string): Promise<void> {
  const probe = createServer();
  probe.listen(port, '127.0.0.1');
  try {
    await Promise.race([once(probe, 'listening'), once(probe, 'error').then(([e]) => Promise.reject(e as Error))]);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new LocalHostConfigError(
        `Port ${port} (${what}) on 127.0.0.1 is in use: stop what holds it (another Azurite?), set ${setting} to a free port, or set AzureWebJobsStorage to a running storage account's connection string.`,
      );
    throw error;
  } finally {
    probe.close();
  }
}

export interface ExtensionFactoryOptions {
  readonly appDir: string;
  readonly projectRoot: string;
  readonly settings: Readonly<Record<string, string>>;
  readonly storageConnectionString: string;
  readonly log: HostLogger;
}

/** Loads the Durable extension when it is present in this build, so the host and it land independently. */
async function optionalExtensions(options: ExtensionFactoryOptions): Promise<HostExtension[]> {
  const file = path.join(__dirname, 'durable', 'durableExtension.js');
  if (!existsSync(file)) return [];
  const loaded = require(file) as { createDurableExtension?: (o: ExtensionFactoryOptions) => HostExtension | Promise<HostExtension> };
  if (typeof loaded.createDurableExtension !== 'function') {
    options.log.warn(`${file} exports no createDurableExtension; Durable functions will not run.`);
    return [];
  }
  return [await loaded.createDurableExtension(options)];
}

function describe(host: LocalHost): string[] {
  const lines: string[] = [];
  for (const route of host.httpRoutes) lines.push(`  ${route.functionName}: [${route.methods?.join(',') ?? 'ALL'}] ${host.url}${route.displayPath}`);
  const shown = new Set(host.httpRoutes.map((r) => r.functionName));
  for (const timer of host.timers) {
    lines.push(`  ${timer.functionName}: timerTrigger (${timer.expression}${timer.runOnStartup ? ', runOnStartup' : ''})`);
    shown.add(timer.functionName);
  }
  for (const fn of host.functions) {
    if (shown.has(fn.name)) continue;
    const trigger = fn.bindings[fn.triggerBindingName];
    const queue = typeof trigger?.queueName === 'string' ? ` (${trigger.queueName})` : '';
    lines.push(`  ${fn.name}: ${fn.triggerType}${queue}`);
  }
  return lines;
}

/** This project's app, or a built copy of it (same package name): the one that uses the dev issuer by default. */
function isThisProject(appDir: string, root: string): boolean {
  if (path.resolve(appDir) === path.resolve(root)) return true;
  const name = (file: string): unknown => {
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name;
    } catch {
      return undefined;
    }
  };
  const ours = name(path.join(root, 'package.json'));
  return typeof ours === 'string' && name(path.join(appDir, 'package.json')) === ours;
}

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { app: { type: 'string' }, 'no-extensions': { type: 'boolean', default: false } },
    strict: true,
  });
  const root = findProjectRoot();
  const appDir = path.resolve(values.app ?? root);
  const file = readLocalSettings(appDir);
  const merged = mergeSettings(file.values, process.env);
  const settings = hostSettings(merged, file.localHttpPort);
  const log = consoleLogger;

  let azurite: RunningAzurite | undefined;
  let azuriteDir = '';
  let storage = settings.storage;
  if (isDevelopmentStorage(storage)) {
    const ports: AzuritePorts = settings.azuritePorts;
    await ensurePortFree(ports.blob, 'Azurite blob', 'AZURITE_BLOB_PORT');
    await ensurePortFree(ports.queue, 'Azurite queue', 'AZURITE_QUEUE_PORT');
    await ensurePortFree(ports.table, 'Azurite table', 'AZURITE_TABLE_PORT');
    azuriteDir = path.resolve(settings.azuriteLocation ?? path.join(root, '.azurite', 'storage'));
    azurite = await startAzurite({ location: azuriteDir, ports, projectRoot: root });
    storage = azurite.connectionString;
  }
  // The app's own clients read these settings; point every development-storage value at the Azurite started here.
  const appSettings: Record<string, string> = {};
  for (const [k, v] of Object.entries(merged)) appSettings[k] = isDevelopmentStorage(v) ? storage : v;

  const thisProject = isThisProject(appDir, root);
  // Another app gets this project's dev issuer (its keys, routes and a token) only when it asks for it.
  const usesDevIssuer = thisProject || appSettings.AUTH_MODE === 'dev';
  let host: LocalHost;
  let issuer: ReturnType<typeof devIssuerSettings> | undefined;
  try {
    try {
      if (usesDevIssuer) issuer = devIssuerSettings(appSettings);
    } catch (error) {
      if (!(error instanceof DevIssuerRefusedError)) throw error;
    }
    const extensions = values['no-extensions'] ? [] : await optionalExtensions({ appDir, projectRoot: root, settings: appSettings, storageConnectionString: storage, log });
    host = await createLocalHost({
      appDir,
      extensions,
      settings: appSettings,
      storageConnectionString: storage,
      httpPort: settings.httpPort,
      maxBodyBytes: settings.maxBodyBytes,
      log,
      ...(issuer ? { builtins: devIssuerRoutes(issuer) } : {}),
    });
  } catch (error) {
    await azurite?.stop();
    throw error;
  }

  const out: string[] = ['', thisProject ? 'Disco Parrot local Functions host (a development host; Azure Functions runs this app in the cloud)' : `${host.appName} on the local Functions host (a development host, not Azure Functions)`];
  out.push(`Storage: ${azurite ? `embedded Azurite on 127.0.0.1:${azurite.ports.blob}-${azurite.ports.table} (data in ${azuriteDir.startsWith(root + path.sep) ? path.relative(root, azuriteDir) : azuriteDir})` : 'from AzureWebJobsStorage'}`);
  out.push(`API: ${host.apiUrl}`, `Sandboxes: SANDBOX_HOST=${appSettings.SANDBOX_HOST ?? 'local-process'}${appSettings.SANDBOX_HOST === 'docker' ? ` (DOCKER_HOST=${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'})` : ''}`, '', 'Functions:', ...describe(host), '');
  if (issuer) {
    const token = await mintDevToken('dev-user', issuer);
    out.push('Dev token for dev-user (1 h; `npm run token -- <user>` for another user):', `  ${token}`, '');
  } else if (usesDevIssuer) out.push('Dev issuer: refused in the production configuration (DISCO_ENV=production).', '');
  out.push('Ready. Ctrl-C stops.');
  console.log(out.join('\n'));

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      process.exit(130);
    }
    stopping = true;
    console.log(`\n${signal}: stopping the host${azurite ? ' and Azurite' : ''}…`);
    host
      .stop()
      .catch((error: unknown) => console.error(`Error while stopping: ${error instanceof Error ? error.message : String(error)}`))
      .then(() => azurite?.stop())
      .then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/** Runs main and turns configuration problems into one line on stderr and exit code 1. */
export function run(argv: readonly string[] = process.argv.slice(2)): void {
  main(argv).catch((error: unknown) => {
    if (error instanceof LocalHostConfigError) console.error(`npm start: ${error.message}`);
    else if (error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS'))
      console.error(`npm start: ${error.message}. Usage: npm start -- [--app <dir>] [--no-extensions]`);
    else console.error(`npm start: the host failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    // The app may hold handles (timers, clients) that would keep a half-started process alive.
    process.exit(1);
  });
}

if (require.main === module) run();
