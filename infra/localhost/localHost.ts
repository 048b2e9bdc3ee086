import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { appEntryPoints, loadEntryPoints } from './appLoader';
import { CoreRegistry, supplyCoreModule, type FunctionRegistration } from './coreApi';
import type { ExtensionContext, HostExtension, HostLogger, RegisteredFunction } from './hostExtension';
import { readHostJson, type HostJson } from './hostJson';
import { createHttpTriggerListener, httpRoutes, type HttpRoute } from './httpTrigger';
import { Invoker, triggerBindingName } from './invoker';
import { LocalHostConfigError } from './problems';
import { QueuePoller, queueFunctions } from './queueTrigger';
import { DEFAULT_MAX_BODY_BYTES } from './settings';
import { STORAGE_OUTPUT_TYPES, StorageOutputs } from './storageOutputs';
import { STORAGE_INPUT_TYPES, StorageInputs } from './storageInputs';
import { TimerScheduler, timerFunctions, type TimerFunction } from './timerTrigger';

export interface LocalHostOptions {
  /** The Functions app folder: its package.json `main` and host.json. */
  readonly appDir: string;
  readonly extensions?: readonly HostExtension[];
  /** App settings as the app sees them; exported to process.env before the app loads. */
  readonly settings: Readonly<Record<string, string>>;
  readonly storageConnectionString: string;
  readonly httpPort: number;
  readonly httpHost?: string;
  readonly maxBodyBytes?: number;
  readonly log?: HostLogger;
  /** Host-level HTTP routes outside the route prefix (exact paths), for example the dev issuer's JWKS. */
  readonly builtins?: ReadonlyMap<string, (req: IncomingMessage, res: ServerResponse) => void>;
}

export interface LocalHost {
  readonly appName: string;
  readonly url: string;
  readonly apiUrl: string;
  readonly functions: readonly RegisteredFunction[];
  readonly httpRoutes: readonly HttpRoute[];
  readonly timers: readonly TimerFunction[];
  stop(): Promise<void>;
}

const BUILT_IN_TRIGGERS = new Set(['httptrigger', 'timertrigger', 'queuetrigger']);

export const consoleLogger: HostLogger = {
  info: (m) => console.log(m),
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

function toRegistered(fn: FunctionRegistration): RegisteredFunction {
  const triggerName = triggerBindingName(fn);
  return { name: fn.name, bindings: fn.bindings, triggerBindingName: triggerName, triggerType: fn.bindings[triggerName]?.type ?? '' };
}

const oneLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, '; ');

/**
 * Bindings other than the trigger that nothing here serves: named at start, because a function whose
 * output is dropped or whose input is empty otherwise fails silently. The HTTP response is served for
 * HTTP triggers; extensions serve the input types they claim.
 */
function unservedBindings(fn: RegisteredFunction, extensions: readonly HostExtension[]): string[] {
  const lines: string[] = [];
  for (const [name, binding] of Object.entries(fn.bindings)) {
    if (name === fn.triggerBindingName) continue;
    const type = binding.type.toLowerCase();
    if (binding.direction === 'out') {
      if (type === 'http' && fn.triggerType.toLowerCase() === 'httptrigger') continue;
      if (STORAGE_OUTPUT_TYPES.has(type)) continue;
      lines.push(`${fn.name}: output binding "${name}" (${binding.type}) is not supported by the local host; what the function sets there is dropped.`);
    } else if (!STORAGE_INPUT_TYPES.has(type) && !extensions.some((e) => e.inputBindingTypes.some((t) => t.toLowerCase() === type))) {
      lines.push(`${fn.name}: input binding "${name}" (${binding.type}) is not supported by the local host; it is left empty.`);
    }
  }
  return lines;
}

/**
 * Loads a v4 Node.js Functions app and serves it: HTTP triggers, timers, storage queues, and whatever
 * trigger types the given extensions claim. Returns once everything listens.
 */
export async function createLocalHost(options: LocalHostOptions): Promise<LocalHost> {
  const log = options.log ?? consoleLogger;
  const extensions = options.extensions ?? [];
  const hostJson: HostJson = readHostJson(options.appDir);
  for (const [key, value] of Object.entries(options.settings)) process.env[key] = value;

  const registry = new CoreRegistry((level, _category, message) => {
    if (level === 'error' || level === 'critical') log.error(message);
    else if (level === 'warning') log.warn(message);
  });
  const removeCoreModule = supplyCoreModule(registry.moduleExports());
  const entryPoints = appEntryPoints(options.appDir);
  try {
    await loadEntryPoints(entryPoints);
  } catch (error) {
    removeCoreModule();
    throw error;
  }

  const all = [...registry.functions.values()];
  const invoker = new Invoker(registry, extensions, log, new StorageOutputs({ settings: options.settings, messageEncoding: hostJson.queues.messageEncoding }), new StorageInputs({ settings: options.settings }));
  const registered = all.map(toRegistered);
  const claimed = new Map<HostExtension, RegisteredFunction[]>(extensions.map((e) => [e, []]));
  for (const fn of registered) {
    const type = fn.triggerType.toLowerCase();
    const owner = extensions.find((e) => e.triggerTypes.some((t) => t.toLowerCase() === type));
    if (owner) claimed.get(owner)?.push(fn);
    else if (!BUILT_IN_TRIGGERS.has(type)) log.warn(`${fn.name}: trigger type ${fn.triggerType} is not supported by the local host; it will not run.`);
    for (const line of unservedBindings(fn, extensions)) log.warn(line);
  }

  const routes = httpRoutes(all, hostJson.routePrefix);
  const timers = timerFunctions(all, options.settings);
  const queues = queueFunctions(all, options.settings, options.storageConnectionString);

  const server: Server = createServer(
    { requestTimeout: 0 },
    createHttpTriggerListener({
      routes,
      routePrefix: hostJson.routePrefix,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      invoker,
      log,
      ...(options.builtins ? { builtins: options.builtins } : {}),
      extensionRoutes: extensions.flatMap((e) => (e.httpRoutes ? [e.httpRoutes] : [])),
    }),
  );
  const host = options.httpHost ?? '127.0.0.1';
  server.listen(options.httpPort, host);
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e as Error))]);
  } catch (error) {
    removeCoreModule();
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new LocalHostConfigError(`Port ${options.httpPort} on ${host} is in use; stop what holds it or set LOCAL_HOST_PORT to another port.`);
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}`;

  try {
    await registry.runHooks('appStart', { hookData: {}, appHookData: registry.appHookData, functionAppDirectory: options.appDir });
  } catch (error) {
    // An appStart hook is where an app checks its configuration: its refusal ends the start, in one line.
    server.close();
    removeCoreModule();
    throw new LocalHostConfigError(`${entryPoints.appName} refused to start: ${oneLine(error)}`);
  }

  const started: HostExtension[] = [];
  const scheduler = new TimerScheduler(timers, invoker, log);
  const poller = new QueuePoller(queues, hostJson.queues, invoker, log);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= stopOnce());
  const stopOnce = async (): Promise<void> => {
    server.close();
    server.closeIdleConnections();
    await Promise.allSettled([scheduler.stop(), poller.stop(), ...started.map((e) => e.stop())]);
    try {
      await registry.runHooks('appTerminate', { hookData: {}, appHookData: registry.appHookData });
    } finally {
      removeCoreModule();
    }
  };
  try {
    for (const extension of extensions) {
      const context: ExtensionContext = {
        functions: claimed.get(extension) ?? [],
        invoke: (name, trigger, metadata) => invoker.invokeForExtension(name, trigger, metadata),
        storageConnectionString: options.storageConnectionString,
        settings: options.settings,
        log,
        hostPort: port,
      };
      await extension.start(context);
      started.push(extension);
    }
    scheduler.start();
    await poller.start();
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    appName: entryPoints.appName,
    url,
    apiUrl: hostJson.routePrefix === '' ? url : `${url}/${hostJson.routePrefix}`,
    functions: registered,
    httpRoutes: routes,
    timers,
    stop,
  };
}
