import { randomUUID } from 'node:crypto';
import type { CoreInvocationContext, CoreInvocationResponse, CoreLogLevel, CoreRegistry, FunctionRegistration } from './coreApi';
import type { StorageOutputs } from './storageOutputs';
import { STORAGE_INPUT_TYPES, type StorageInputs } from './storageInputs';
import type { HostExtension, HostLogger, InvocationOutcome, RegisteredBinding, RpcTypedData } from './hostExtension';

/** The raw result of one invocation: what the programming model returned, still in RpcTypedData form. */
export interface RawInvocationResult {
  readonly returnValue: unknown;
  readonly outputData: ReadonlyMap<string, unknown>;
}

function readOnly(name: string): never {
  throw new TypeError(`Cannot assign to read only property "${name}"`);
}

type SharedHookFields = {
  readonly hookData: Record<string, unknown>;
  readonly appHookData: Record<string, unknown>;
  readonly invocationContext: unknown;
};

/** What the pre- and post-invocation hook contexts share, read-only as the worker's: a hook that assigns one throws. */
function hookContext<T extends object>(shared: SharedHookFields, own: T): T & SharedHookFields {
  for (const [name, value] of Object.entries(shared))
    Object.defineProperty(own, name, { enumerable: true, configurable: true, get: () => value, set: () => readOnly(name) });
  return own as T & SharedHookFields;
}

/**
 * Invokes registered functions the way the Node.js worker does: the app's programming model builds the
 * invocation model, `getArguments` → preInvocation hooks → `invokeFunction` → postInvocation hooks →
 * `getResponse`. Extra input bindings of a type an extension claims are filled by that extension.
 */
export class Invoker {
  constructor(
    private readonly registry: CoreRegistry,
    private readonly extensions: readonly HostExtension[],
    private readonly log: HostLogger,
    /** Writes blob, queue and table outputs after the function returns; without it they are dropped. */
    private readonly storageOutputs?: StorageOutputs,
    /** Reads blob and table inputs before the function runs; without them they are left empty. */
    private readonly storageInputs?: StorageInputs,
  ) {}

  registration(functionName: string): FunctionRegistration {
    const found = this.registry.functions.get(functionName.toLowerCase());
    if (!found) throw new Error(`No function named "${functionName}" is registered.`);
    return found;
  }

  async invoke(functionName: string, trigger: RpcTypedData, triggerMetadata: Record<string, RpcTypedData> = {}): Promise<RawInvocationResult> {
    const fn = this.registration(functionName);
    const model = this.registry.programmingModel;
    if (!model) throw new Error('The app registered functions without setting a programming model.');
    const triggerName = triggerBindingName(fn);
    const inputData: { name: string; data: unknown }[] = [{ name: triggerName, data: trigger }];
    for (const [name, binding] of Object.entries(fn.bindings)) {
      if (name === triggerName || binding.direction !== 'in') continue;
      const extension = this.extensions.find((e) => e.inputBindingTypes.some((t) => t.toLowerCase() === binding.type.toLowerCase()));
      if (extension) inputData.push({ name, data: await extension.inputBindingValue(binding) });
      else if (this.storageInputs && STORAGE_INPUT_TYPES.has(binding.type.toLowerCase())) {
        const data = await this.storageInputs.read(fn.name, name, binding, triggerMetadata);
        if (data !== undefined) inputData.push({ name, data });
      } else this.log.warn(`${fn.name}: input binding "${name}" of type ${binding.type} is not supported by the local host; it is left empty.`);
    }

    const invocationId = randomUUID();
    const logLine = (level: CoreLogLevel, category: string, message: string): void => {
      if (level === 'trace' || level === 'debug' || level === 'none') return;
      const line = `[${fn.name}] ${message}`;
      if (level === 'error' || level === 'critical') this.log.error(line);
      else if (level === 'warning') this.log.warn(line);
      else if (category === 'user' || level === 'information') this.log.info(line);
    };
    const coreCtx: CoreInvocationContext = {
      invocationId,
      request: { invocationId, functionId: fn.functionId, inputData, triggerMetadata },
      metadata: { name: fn.name, functionId: fn.functionId, bindings: { ...fn.bindings } },
      log: logLine,
    };
    const invocationModel = await model.getInvocationModel(coreCtx);
    const args = await invocationModel.getArguments();
    const hookData: Record<string, unknown> = {};
    const appHookData = this.registry.appHookData;
    const shared: SharedHookFields = { hookData, appHookData, invocationContext: args.context };
    const pre = hookContext(shared, { functionCallback: fn.callback, inputs: args.inputs });
    coreCtx.state = 'preInvocationHooks';
    try {
      await this.registry.runHooks('preInvocation', pre);
    } finally {
      coreCtx.state = undefined;
    }
    const post = hookContext(shared, { inputs: pre.inputs, result: null as unknown, error: null as unknown });
    coreCtx.state = 'invocation';
    try {
      post.result = await invocationModel.invokeFunction(args.context, pre.inputs, pre.functionCallback);
    } catch (error) {
      post.error = error;
    } finally {
      coreCtx.state = undefined;
    }
    coreCtx.state = 'postInvocationHooks';
    try {
      await this.registry.runHooks('postInvocation', post);
    } finally {
      coreCtx.state = undefined;
    }
    if (post.error !== null && post.error !== undefined) throw post.error;
    const response: CoreInvocationResponse = await invocationModel.getResponse(args.context, post.result);
    const outputData = new Map<string, unknown>();
    for (const item of response.outputData ?? []) if (item.name) outputData.set(item.name, item.data);
    const result = { returnValue: response.returnValue, outputData };
    await this.storageOutputs?.write(fn, result, triggerMetadata);
    return result;
  }

  /** The extension-facing form: return value and outputs converted back to plain JS values. */
  async invokeForExtension(functionName: string, trigger: RpcTypedData, triggerMetadata?: Record<string, RpcTypedData>): Promise<InvocationOutcome> {
    const raw = await this.invoke(functionName, trigger, triggerMetadata);
    const outputs: Record<string, unknown> = {};
    for (const [name, data] of raw.outputData) outputs[name] = fromTypedData(data);
    return { returnValue: fromTypedData(raw.returnValue), outputs };
  }
}

export function triggerBindingName(fn: { name: string; bindings: Readonly<Record<string, RegisteredBinding>> }): string {
  const entry = Object.entries(fn.bindings).find(([, b]) => b.direction === 'in' && /trigger$/i.test(b.type));
  if (!entry) throw new Error(`Function "${fn.name}" has no trigger binding.`);
  return entry[0];
}

/** RpcTypedData → JS value, mirroring how the library reads inputs (strings that parse as JSON are parsed). */
export function fromTypedData(data: unknown): unknown {
  if (data === null || data === undefined || typeof data !== 'object') return data ?? undefined;
  const d = data as Record<string, unknown>;
  if (typeof d.string === 'string') {
    try {
      return JSON.parse(d.string);
    } catch {
      return d.string;
    }
  }
  if (typeof d.json === 'string') return JSON.parse(d.json);
  if (d.bytes instanceof Uint8Array) return Buffer.from(d.bytes);
  if (typeof d.int === 'number') return d.int;
  if (typeof d.double === 'number') return d.double;
  if (d.http !== undefined) return d.http;
  return undefined;
}
