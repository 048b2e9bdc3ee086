import { randomUUID } from 'node:crypto';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { TableClient, type TableEntity } from '@azure/data-tables';
import type { FunctionRegistration } from './coreApi';
import type { RegisteredBinding, RpcTypedData } from './hostExtension';
import { fromTypedData, type RawInvocationResult } from './invoker';
import { encodeMessage } from './queueTrigger';
import { resolveSettingReferences } from './settings';

/** The storage output binding types the local host writes, as the Storage extension does in Azure. */
export const STORAGE_OUTPUT_TYPES: ReadonlySet<string> = new Set(['blob', 'queue', 'table']);

export interface StorageOutputsOptions {
  /** App settings: a binding's `connection` names one (default `AzureWebJobsStorage`). */
  readonly settings: Readonly<Record<string, string>>;
  readonly messageEncoding: 'base64' | 'none';
}

class OutputBindingError extends Error {}

/**
 * Writes what a function set on its blob, queue and table output bindings once it has returned, before the
 * trigger's response is sent, so a caller that sees the response can read what was written.
 */
export class StorageOutputs {
  constructor(private readonly options: StorageOutputsOptions) {}

  async write(fn: FunctionRegistration, result: RawInvocationResult, triggerMetadata: Readonly<Record<string, RpcTypedData>>): Promise<void> {
    for (const [name, binding] of Object.entries(fn.bindings)) {
      const type = binding.type.toLowerCase();
      if (binding.direction !== 'out' || !STORAGE_OUTPUT_TYPES.has(type)) continue;
      const data = name === '$return' ? result.returnValue : result.outputData.get(name);
      if (data === undefined || data === null) continue;
      const where = `${fn.name}: output binding "${name}" (${binding.type})`;
      const connection = this.connection(binding, where);
      const expand = (template: unknown, property: string): string => {
        if (typeof template !== 'string' || template === '') throw new OutputBindingError(`${where} has no ${property}.`);
        return expandBindingExpression(resolveSettingReferences(template, this.options.settings), triggerMetadata, where);
      };
      if (type === 'blob') await writeBlob(connection, expand(binding.path, 'path'), blobContent(data), where);
      else if (type === 'queue') await writeQueue(connection, expand(binding.queueName, 'queueName'), messages(data), this.options.messageEncoding);
      else await writeTable(connection, expand(binding.tableName, 'tableName'), entities(data, binding, where));
    }
  }

  private connection(binding: RegisteredBinding, where: string): string {
    const name = typeof binding.connection === 'string' && binding.connection !== '' ? binding.connection : 'AzureWebJobsStorage';
    const value = this.options.settings[name];
    if (!value) throw new OutputBindingError(`${where}: setting ${name} (its connection) is not set.`);
    return value;
  }
}

/** `{rand-guid}`, `{datetime}` and trigger metadata names such as a route's `{id}`, as the host expands them. */
export function expandBindingExpression(template: string, metadata: Readonly<Record<string, RpcTypedData>>, where: string): string {
  const byName = new Map(Object.entries(metadata).map(([k, v]) => [k.toLowerCase(), v] as const));
  return template.replace(/\{([^{}]+)\}/g, (_whole, expression: string) => {
    const key = expression.trim().toLowerCase();
    if (key === 'rand-guid') return randomUUID();
    if (key === 'datetime') return new Date().toISOString().replace(/[:.]/g, '-');
    const value = byName.get(key);
    if (value === undefined) throw new OutputBindingError(`${where}: nothing in the trigger supplies {${expression}}.`);
    return String(fromTypedData(value));
  });
}

function blobContent(data: unknown): Buffer {
  const d = data as Record<string, unknown>;
  if (d.bytes instanceof Uint8Array) return Buffer.from(d.bytes);
  if (typeof d.string === 'string') return Buffer.from(d.string, 'utf8');
  if (typeof d.json === 'string') return Buffer.from(d.json, 'utf8');
  return Buffer.from(String(fromTypedData(data)), 'utf8');
}

function messages(data: unknown): string[] {
  const d = data as Record<string, unknown>;
  if (typeof d.string === 'string') return [d.string];
  const value = fromTypedData(data);
  const text = (item: unknown): string => (typeof item === 'string' ? item : Buffer.isBuffer(item) ? item.toString('utf8') : JSON.stringify(item));
  return Array.isArray(value) ? value.map(text) : [text(value)];
}

function entities(data: unknown, binding: RegisteredBinding, where: string): TableEntity[] {
  const value = fromTypedData(data);
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) => {
    if (item === null || typeof item !== 'object') throw new OutputBindingError(`${where}: a table output must be an object or an array of objects.`);
    const entity = { ...(item as Record<string, unknown>) };
    entity.PartitionKey ??= entity.partitionKey ?? binding.partitionKey;
    entity.RowKey ??= entity.rowKey ?? binding.rowKey;
    delete entity.partitionKey;
    delete entity.rowKey;
    if (typeof entity.PartitionKey !== 'string' || typeof entity.RowKey !== 'string')
      throw new OutputBindingError(`${where}: each entity needs a string PartitionKey and RowKey.`);
    return entity as TableEntity;
  });
}

const insecure = (connection: string): boolean => /DefaultEndpointsProtocol=http;|Endpoint=http:\/\//i.test(connection);

async function writeBlob(connection: string, blobPath: string, content: Buffer, where: string): Promise<void> {
  const slash = blobPath.indexOf('/');
  if (slash <= 0 || slash === blobPath.length - 1) throw new OutputBindingError(`${where}: path must be <container>/<blob>.`);
  const container = BlobServiceClient.fromConnectionString(connection).getContainerClient(blobPath.slice(0, slash));
  await container.createIfNotExists();
  await container.getBlockBlobClient(blobPath.slice(slash + 1)).uploadData(content);
}

async function writeQueue(connection: string, queueName: string, texts: readonly string[], encoding: 'base64' | 'none'): Promise<void> {
  const queue = QueueServiceClient.fromConnectionString(connection).getQueueClient(queueName);
  await queue.createIfNotExists();
  for (const text of texts) await queue.sendMessage(encodeMessage(text, encoding));
}

async function writeTable(connection: string, tableName: string, rows: readonly TableEntity[]): Promise<void> {
  const table = TableClient.fromConnectionString(connection, tableName, { allowInsecureConnection: insecure(connection) });
  try {
    await table.createTable();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 409) throw error;
  }
  // Inserts, as the Table output binding does: a row that exists already fails the invocation.
  for (const row of rows) await table.createEntity(row);
}
