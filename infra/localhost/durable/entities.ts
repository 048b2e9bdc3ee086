import { RestError, TableClient } from '@azure/data-tables';
import { z } from 'zod';
import type { ExtensionContext, HostLogger } from '../hostExtension';

/** One operation on an entity: what durable-functions' Entity reads from its trigger batch. */
export interface EntityOperation {
  readonly id: string;
  readonly name: string;
  readonly signal: boolean;
  /** JSON text, or undefined for no input. */
  readonly input: string | undefined;
}

export interface EntityOutcome {
  readonly isError: boolean;
  /** JSON text of the operation's return value or error. */
  readonly result: string | undefined;
}

const entityStateSchema = z.object({
  entityExists: z.boolean().optional(),
  entityState: z.string().nullish(),
  results: z.array(z.object({ isError: z.boolean(), result: z.string().nullish() }).loose()),
  signals: z.array(z.object({ target: z.object({ name: z.string(), key: z.string() }).loose(), name: z.string(), input: z.string().nullish() }).loose()).default([]),
}).loose();

/** `@counter@k1` (the scheduler id durable-functions uses) → name and key. */
export function parseSchedulerId(schedulerId: string): { name: string; key: string } {
  const match = /^@([^@]+)@(.*)$/s.exec(schedulerId);
  if (!match?.[1] || match[2] === undefined) throw new Error(`'${schedulerId}' is not an entity id.`);
  return { name: match[1].toLowerCase(), key: match[2] };
}
export const schedulerId = (name: string, key: string): string => `@${name.toLowerCase()}@${key}`;

/**
 * Durable entities: one operation at a time per entity, in arrival order, through the app's entityTrigger
 * function and durable-functions' own Entity (a batch of one). State rests in the `<hub>Entities` table
 * after each operation; signals an operation sends are queued behind it.
 */
export class EntityRunner {
  private readonly table: TableClient;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    connectionString: string,
    tableName: string,
    private readonly functions: ReadonlyMap<string, string>,
    private readonly invoke: ExtensionContext['invoke'],
    private readonly log: HostLogger,
  ) {
    this.table = TableClient.fromConnectionString(connectionString, tableName, { allowInsecureConnection: true });
  }

  async ensureTable(): Promise<void> {
    try {
      await this.table.createTable();
    } catch (error) {
      if (!(error instanceof RestError && error.statusCode === 409)) throw error;
    }
  }

  hasEntity(name: string): boolean {
    return this.functions.has(name.toLowerCase());
  }

  /** Runs the operation after every earlier one on the same entity. */
  run(id: string, operation: EntityOperation): Promise<EntityOutcome> {
    const previous = this.chains.get(id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.execute(id, operation));
    this.chains.set(id, next);
    const tracked = next.finally(() => {
      this.inFlight.delete(tracked);
      if (this.chains.get(id) === next) this.chains.delete(id);
    });
    this.inFlight.add(tracked);
    return next;
  }

  /** Queues a signal; its failure is logged, as nobody awaits it. */
  signal(id: string, operation: EntityOperation): void {
    this.run(id, operation).catch((error: unknown) => this.log.error(`durable: entity ${id} ${operation.name}: ${error instanceof Error ? error.message : String(error)}`));
  }

  async readState(id: string): Promise<string | undefined> {
    const row = await this.readRow(id);
    return row?.exists ? (row.state ?? 'null') : undefined;
  }

  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private async execute(id: string, operation: EntityOperation): Promise<EntityOutcome> {
    const { name, key } = parseSchedulerId(id);
    const fn = this.functions.get(name);
    if (!fn) return { isError: true, result: JSON.stringify({ message: `No entity function named '${name}'.` }) };
    const row = await this.readRow(id);
    const binding = {
      self: { name, key },
      exists: row?.exists ?? false,
      ...(row?.exists && row.state !== undefined ? { state: row.state } : {}),
      batch: [{ id: operation.id, name: operation.name, signal: operation.signal, ...(operation.input !== undefined ? { input: operation.input } : {}) }],
    };
    const outcome = await this.invoke(fn, { json: JSON.stringify(binding) });
    const state = entityStateSchema.parse(outcome.returnValue);
    const result = state.results[0];
    // A failed operation leaves no trace: its state changes and signals are dropped, as in Azure.
    if (result?.isError) return { isError: true, result: result.result ?? undefined };
    const exists = state.entityExists ?? false;
    await this.table.upsertEntity({ partitionKey: id, rowKey: 'entity', exists, ...(exists && state.entityState ? { state: state.entityState } : {}) }, 'Replace');
    for (const s of state.signals)
      this.signal(schedulerId(s.target.name, s.target.key), { id: `${operation.id}:${s.name}`, name: s.name, signal: true, input: s.input || undefined });
    return { isError: false, result: result?.result ?? undefined };
  }

  private async readRow(id: string): Promise<{ exists: boolean; state: string | undefined } | undefined> {
    try {
      const row = await this.table.getEntity<{ exists?: boolean; state?: string }>(id, 'entity');
      return { exists: row.exists === true, state: row.state };
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }
}
