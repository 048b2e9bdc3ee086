import type { TableClient } from '@azure/data-tables';

/**
 * Creates the client's table on first use and remembers it (the SDK's `createTable` accepts an existing
 * table); a failure is forgotten, so the next call tries again.
 */
export function tableCreatedOnce(client: TableClient): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= client.createTable().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}
