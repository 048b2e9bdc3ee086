import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The seam between the local Functions host (registration, HTTP, timers, queues) and extensions that run
 * other trigger types inside it, such as the Durable engine (orchestrationTrigger, activityTrigger,
 * entityTrigger, and the durableClient input binding). The host owns function registration and invocation
 * through @azure/functions' own invocation model; an extension owns scheduling and state for its triggers.
 */

/** RpcTypedData as the worker protocol carries it (only the shapes the local host produces). */
export type RpcTypedData =
  | { string: string }
  | { json: string }
  | { bytes: Uint8Array }
  | { int: number }
  | { double: number }
  | { http: unknown };

export interface RegisteredBinding {
  readonly type: string;
  readonly direction: 'in' | 'out' | 'inout' | string;
  readonly [key: string]: unknown;
}

export interface RegisteredFunction {
  readonly name: string;
  /** Binding name → binding as registered (trigger, extra inputs, extra outputs, `$return`). */
  readonly bindings: Readonly<Record<string, RegisteredBinding>>;
  readonly triggerBindingName: string;
  readonly triggerType: string;
}

export interface InvocationOutcome {
  /** The handler's return value, converted back from RpcTypedData to a JS value. */
  readonly returnValue: unknown;
  /** Extra output bindings by name, converted likewise. */
  readonly outputs: Readonly<Record<string, unknown>>;
}

export interface HostLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface ExtensionContext {
  /** The registered functions whose trigger type this extension claimed. */
  readonly functions: readonly RegisteredFunction[];
  /**
   * Invokes a function through @azure/functions' invocation model with the given trigger payload.
   * Extra input bindings (for example durableClient) are filled by the extensions that claimed them.
   */
  invoke(functionName: string, trigger: RpcTypedData, triggerMetadata?: Record<string, RpcTypedData>): Promise<InvocationOutcome>;
  /** The storage connection string (Azurite locally). */
  readonly storageConnectionString: string;
  /** App settings (local.settings.json Values merged over the environment). */
  readonly settings: Readonly<Record<string, string | undefined>>;
  readonly log: HostLogger;
  /** The host's HTTP port, where an extension's `httpPrefix` routes are served (as the real host does). */
  readonly hostPort: number;
}

/** Host-level HTTP routes an extension serves on the host's own port, below a path prefix. */
export interface ExtensionHttpRoutes {
  /** A path prefix outside the app's route prefix, for example `/runtime/webhooks/durabletask`. */
  readonly prefix: string;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export interface HostExtension {
  readonly name: string;
  /** Trigger binding types this extension runs, for example 'orchestrationTrigger'. */
  readonly triggerTypes: readonly string[];
  /** Input binding types this extension supplies values for, for example 'durableClient'. */
  readonly inputBindingTypes: readonly string[];
  start(context: ExtensionContext): Promise<void>;
  /** The value of an input binding of one of `inputBindingTypes`, for one invocation. */
  inputBindingValue(binding: RegisteredBinding): Promise<RpcTypedData>;
  /** Routes answered on the host's port before the app's functions; they must answer 503 until started. */
  readonly httpRoutes?: ExtensionHttpRoutes;
  stop(): Promise<void>;
}
