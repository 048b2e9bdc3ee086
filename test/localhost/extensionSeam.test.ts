import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '../../localhost/azuriteProcess';
import type { ExtensionContext, HostExtension, RegisteredBinding, RpcTypedData } from '../../localhost/hostExtension';
import { createLocalHost, type LocalHost } from '../../localhost/localHost';
import { azuriteConnectionString } from '../support/azurite';

/** A small extension standing in for Durable: claims a trigger type and an input binding type. */
function widgetExtension(): HostExtension & { context?: ExtensionContext; stopped: boolean; bindingsAsked: RegisteredBinding[] } {
  const ext = {
    name: 'widgets',
    triggerTypes: ['widgetTrigger'],
    inputBindingTypes: ['widgetClient'],
    context: undefined as ExtensionContext | undefined,
    stopped: false,
    bindingsAsked: [] as RegisteredBinding[],
    async start(context: ExtensionContext) {
      ext.context = context;
    },
    async inputBindingValue(binding: RegisteredBinding): Promise<RpcTypedData> {
      ext.bindingsAsked.push(binding);
      return { json: JSON.stringify({ name: 'widget-client' }) };
    },
    async stop() {
      ext.stopped = true;
    },
  };
  return ext;
}

describe('host extension seam (in process)', () => {
  const ext = widgetExtension();
  const warnings: string[] = [];
  let host: LocalHost;

  beforeAll(async () => {
    host = await createLocalHost({
      appDir: path.resolve(__dirname, '../fixtures/apps/extension'),
      extensions: [ext],
      settings: { AzureWebJobsStorage: azuriteConnectionString() },
      storageConnectionString: azuriteConnectionString(),
      httpPort: await freeLoopbackPort(),
      log: { info: () => undefined, warn: (m) => warnings.push(m), error: () => undefined },
    });
  });
  afterAll(async () => {
    await host?.stop();
  });

  it('hands the extension exactly the functions whose trigger type it claimed, with their bindings', () => {
    const claimed = ext.context?.functions ?? [];
    expect(claimed.map((f) => f.name).sort()).toEqual(['widgetFailer', 'widgetWorker']);
    const worker = claimed.find((f) => f.name === 'widgetWorker');
    expect(worker?.triggerType).toBe('widgetTrigger');
    expect(worker?.triggerBindingName).toBe('job');
    expect(worker?.bindings.widgets?.type).toBe('widgetClient');
    expect(ext.context?.storageConnectionString).toBe(azuriteConnectionString());
  });

  it('invokes through the invocation model: trigger in, claimed inputs filled, return value and outputs back, hooks applied', async () => {
    const outcome = await ext.context!.invoke('widgetWorker', { json: JSON.stringify({ id: 'w1', n: 21 }) });
    expect(outcome.returnValue).toEqual({ id: 'w1', doubled: 42, clientName: 'widget-client', functionName: 'widgetWorker', post: true });
    expect(outcome.outputs).toEqual({ audit: { saw: 'w1' } });
    expect(ext.bindingsAsked.some((b) => b.type === 'widgetClient' && b.name === 'widgets')).toBe(true);
  });

  it('rejects the invoke promise when the function throws', async () => {
    await expect(ext.context!.invoke('widgetFailer', { json: '{}' })).rejects.toThrow('widget failed');
  });

  it('fills a claimed input binding for an HTTP-triggered function too', async () => {
    const res = await fetch(`${host.url}/widgets/start`, { method: 'POST' });
    expect(await res.json()).toEqual({ client: { name: 'widget-client' } });
  });

  it('warns about trigger types nobody runs instead of failing', () => {
    expect(warnings.some((w) => w.includes('unsupported') && w.includes('cosmosDBTrigger'))).toBe(true);
  });

  it('stops the extension when the host stops', async () => {
    await host.stop();
    expect(ext.stopped).toBe(true);
  });
});
