import Module from 'node:module';
import type { RegisteredBinding } from './hostExtension';

/**
 * The `@azure/functions-core` module that the real Node.js worker supplies to apps at run time. The
 * @azure/functions library requires it lazily; supplying our own lets the local host collect the app's
 * registrations and use the library's own programming model for every invocation.
 */

export type FunctionCallback = (...args: unknown[]) => unknown;

/** The subset of the core ProgrammingModel/InvocationModel types the local host calls. */
export interface CoreInvocationModel {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], callback: FunctionCallback): Promise<unknown>;
  getResponse(context: unknown, result: unknown): Promise<CoreInvocationResponse>;
}

export interface CoreInvocationResponse {
  invocationId?: string | null;
  outputData?: { name?: string | null; data?: unknown }[] | null;
  returnValue?: unknown;
}

export type CoreLogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';

export interface CoreInvocationContext {
  invocationId: string;
  request: {
    invocationId: string;
    functionId: string;
    inputData: { name: string; data: unknown }[];
    triggerMetadata: Record<string, unknown>;
  };
  metadata: { name: string; functionId: string; bindings: Record<string, RegisteredBinding> };
  state?: 'preInvocationHooks' | 'postInvocationHooks' | 'invocation';
  log(level: CoreLogLevel, category: string, message: string): void;
}

export interface ProgrammingModel {
  name: string;
  version: string;
  getInvocationModel(coreContext: CoreInvocationContext): CoreInvocationModel | Promise<CoreInvocationModel>;
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>> | Record<string, string>;
}

export interface FunctionRegistration {
  readonly name: string;
  readonly functionId: string;
  readonly bindings: Readonly<Record<string, RegisteredBinding>>;
  readonly callback: FunctionCallback;
}

export type HookName = 'appStart' | 'appTerminate' | 'preInvocation' | 'postInvocation' | 'log';
type HookCallback = (context: Record<string, unknown>) => unknown;

class Disposable {
  static from(...likes: { dispose: () => unknown }[]): Disposable {
    return new Disposable(() => likes.forEach((l) => l.dispose()));
  }
  #callOnDispose: (() => unknown) | undefined;
  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }
  dispose(): unknown {
    const call = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return call?.();
  }
}

export type CoreLogSink = (level: CoreLogLevel, category: string, message: string) => void;

/** What the app registered while its entry points loaded, plus the hooks it wants called. */
export class CoreRegistry {
  readonly functions = new Map<string, FunctionRegistration>();
  readonly hooks: Record<HookName, HookCallback[]> = {
    appStart: [],
    appTerminate: [],
    preInvocation: [],
    postInvocation: [],
    log: [],
  };
  /** Shared across all hooks of the app, like the worker's appHookData. */
  readonly appHookData: Record<string, unknown> = {};
  programmingModel: ProgrammingModel | undefined;

  constructor(private readonly logSink: CoreLogSink) {}

  /** The module object handed to `require('@azure/functions-core')`. */
  moduleExports(): Record<string, unknown> {
    return {
      version: '3.10.1-local',
      hostVersion: '4.1000.0-local',
      Disposable,
      registerFunction: (metadata: { name: string; functionId?: string; bindings: Record<string, RegisteredBinding> }, callback: FunctionCallback) => {
        const key = metadata.name.toLowerCase();
        if (this.functions.has(key)) throw new Error(`A function named "${metadata.name}" is already registered.`);
        this.functions.set(key, {
          name: metadata.name,
          functionId: metadata.functionId ?? metadata.name,
          bindings: metadata.bindings,
          callback,
        });
        return new Disposable(() => this.functions.delete(key));
      },
      registerHook: (hookName: string, callback: HookCallback) => {
        if (!(hookName in this.hooks)) throw new RangeError(`Unrecognized hook "${hookName}"`);
        const list = this.hooks[hookName as HookName];
        list.push(callback);
        return new Disposable(() => {
          const at = list.indexOf(callback);
          if (at >= 0) list.splice(at, 1);
        });
      },
      setProgrammingModel: (model: ProgrammingModel) => {
        this.programmingModel = model;
      },
      getProgrammingModel: () => this.programmingModel,
      log: (level: CoreLogLevel, category: string, message: string) => this.logSink(level, category, message),
    };
  }

  async runHooks(name: HookName, context: Record<string, unknown>): Promise<void> {
    for (const hook of [...this.hooks[name]]) await hook(context);
  }
}

interface ModuleInternals {
  _load(request: string, parent: unknown, isMain: boolean): unknown;
}

/**
 * Makes `require('@azure/functions-core')` return `exports` for every module loaded afterwards, as the
 * worker does. Returns a function that removes the hook.
 */
export function supplyCoreModule(exports: Record<string, unknown>): () => void {
  const internals = Module as unknown as ModuleInternals;
  const original = internals._load;
  internals._load = function load(request: string, parent: unknown, isMain: boolean): unknown {
    if (request === '@azure/functions-core') return exports;
    return original.call(this, request, parent, isMain);
  };
  return () => {
    internals._load = original;
  };
}
