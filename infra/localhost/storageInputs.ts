import { BlobServiceClient, RestError as BlobRestError } from '@azure/storage-blob';
import { RestError, TableClient, type TableEntityResult } from '@azure/data-tables';
import type { RegisteredBinding, RpcTypedData } from './hostExtension';
import { expandBindingExpression } from './storageOutputs';
import { resolveSettingReferences } from './settings';

/** The storage input binding types the local host reads, as the Storage extension does in Azure. */
export const STORAGE_INPUT_TYPES: ReadonlySet<string> = new Set(['blob', 'table']);

export interface StorageInputsOptions {
  /** App settings: a binding's `connection` names one (default `AzureWebJobsStorage`). */
  readonly settings: Readonly<Record<string, string>>;
}

class InputBindingError extends Error {}

/** The Table input binding's default and maximum `take` (the extension reads at most 1000 rows per query page). */
const MAX_TAKE = 1000;

/**
 * Reads blob and table input bindings from storage (Azurite locally) before the function runs: a blob's
 * content (bytes, or a string with `dataType: 'string'`; nothing when the blob does not exist), one table
 * row by `partitionKey` + `rowKey` (nothing when absent), or the rows a `partitionKey` / `filter` / `take`
 * query returns, as an array. Binding expressions (`{id}`, `%SETTING%`) expand as for outputs.
 */
export class StorageInputs {
  constructor(private readonly options: StorageInputsOptions) {}

  async read(functionName: string, name: string, binding: RegisteredBinding, triggerMetadata: Readonly<Record<string, RpcTypedData>>): Promise<RpcTypedData | undefined> {
    const where = `${functionName}: input binding "${name}" (${binding.type})`;
    const connection = this.connection(binding, where);
    const expand = (template: unknown): string | undefined =>
      typeof template === 'string' && template !== '' ? expandBindingExpression(resolveSettingReferences(template, this.options.settings), triggerMetadata, where) : undefined;
    if (binding.type.toLowerCase() === 'blob') {
      const path = expand(binding.path);
      if (!path) throw new InputBindingError(`${where} has no path.`);
      return readBlob(connection, path, binding.dataType === 'string', where);
    }
    const tableName = expand(binding.tableName);
    if (!tableName) throw new InputBindingError(`${where} has no tableName.`);
    const table = TableClient.fromConnectionString(connection, tableName, { allowInsecureConnection: /DefaultEndpointsProtocol=http;|Endpoint=http:\/\//i.test(connection) });
    const partitionKey = expand(binding.partitionKey);
    const rowKey = expand(binding.rowKey);
    if (partitionKey !== undefined && rowKey !== undefined) {
      const row = await readRow(table, partitionKey, rowKey);
      return row ? { json: JSON.stringify(row) } : undefined;
    }
    const take = typeof binding.take === 'number' && binding.take > 0 ? Math.min(binding.take, MAX_TAKE) : MAX_TAKE;
    const clauses = [
      ...(partitionKey !== undefined ? [`PartitionKey eq '${partitionKey.replace(/'/g, "''")}'`] : []),
      ...(typeof binding.filter === 'string' && binding.filter !== '' ? [`(${expand(binding.filter) ?? ''})`] : []),
    ];
    return { json: JSON.stringify(await queryRows(table, clauses.join(' and '), take)) };
  }

  private connection(binding: RegisteredBinding, where: string): string {
    const name = typeof binding.connection === 'string' && binding.connection !== '' ? binding.connection : 'AzureWebJobsStorage';
    const value = this.options.settings[name];
    if (!value) throw new InputBindingError(`${where}: setting ${name} (its connection) is not set.`);
    return value;
  }
}

async function readBlob(connection: string, blobPath: string, asString: boolean, where: string): Promise<RpcTypedData | undefined> {
  const slash = blobPath.indexOf('/');
  if (slash <= 0 || slash === blobPath.length - 1) throw new InputBindingError(`${where}: path must be <container>/<blob>.`);
  const blob = BlobServiceClient.fromConnectionString(connection).getContainerClient(blobPath.slice(0, slash)).getBlobClient(blobPath.slice(slash + 1));
  try {
    const content = await blob.downloadToBuffer();
    return asString ? { string: content.toString('utf8') } : { bytes: new Uint8Array(content) };
  } catch (error) {
    if (error instanceof BlobRestError && error.statusCode === 404) return undefined; // as in Azure: no blob, no value
    throw error;
  }
}

/** A row as the binding hands it to a Node.js function: PartitionKey, RowKey, Timestamp and the properties. */
function plainRow(row: TableEntityResult<Record<string, unknown>>): Record<string, unknown> {
  const { partitionKey, rowKey, timestamp, etag: _etag, ['odata.metadata']: _metadata, ...properties } = row as Record<string, unknown>;
  return { PartitionKey: partitionKey, RowKey: rowKey, ...(timestamp !== undefined ? { Timestamp: timestamp } : {}), ...properties };
}

async function readRow(table: TableClient, partitionKey: string, rowKey: string): Promise<Record<string, unknown> | undefined> {
  try {
    return plainRow(await table.getEntity<Record<string, unknown>>(partitionKey, rowKey));
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404) return undefined;
    throw error;
  }
}

async function queryRows(table: TableClient, filter: string, take: number): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  try {
    for await (const row of table.listEntities<Record<string, unknown>>(filter ? { queryOptions: { filter } } : {})) {
      rows.push(plainRow(row));
      if (rows.length >= take) break;
    }
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404) return []; // no table yet: no rows
    throw error;
  }
  return rows;
}
