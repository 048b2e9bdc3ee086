import { odata, RestError, TableClient } from '@azure/data-tables';
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

/** The orchestration holding an entity's lock, and which of its critical sections. */
export interface LockHolder {
  readonly owner: string;
  readonly requestId: string;
}

interface Settle<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

type EntityRequest =
  | { readonly kind: 'operation'; readonly operation: EntityOperation; readonly caller: string | undefined; readonly settle: Settle<EntityOutcome> }
  | { readonly kind: 'lock' | 'release'; readonly holder: LockHolder; readonly settle: Settle<void> };

interface EntitySlot {
  loaded: boolean;
  lock: LockHolder | undefined;
  readonly queue: EntityRequest[];
  pumping: boolean;
}

interface EntityRow {
  exists?: boolean;
  state?: string;
  lockOwner?: string;
  lockRequestId?: string;
}

/**
 * While an orchestration holds the entity's lock, only its own calls, a repeat of its lock request (after a
 * restart) and its release go through; everything else waits in arrival order, as in the Durable extension.
 */
function eligible(lock: LockHolder | undefined, request: EntityRequest): boolean {
  if (!lock) return true;
  if (request.kind === 'operation') return request.caller === lock.owner && !request.operation.signal;
  return request.holder.owner === lock.owner;
}

/**
 * Durable entities: one operation at a time per entity, in arrival order, through the app's entityTrigger
 * function and durable-functions' own Entity (a batch of one). State rests in the `<hub>Entities` table
 * after each operation; signals an operation sends are queued behind it. Critical sections: an entity
 * locked by an orchestration (the lock rests in its row) serves only that orchestration until released.
 */
export class EntityRunner {
  private readonly table: TableClient;
  private readonly slots = new Map<string, EntitySlot>();
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

  /** Runs the operation after every earlier one on the same entity (and after its lock, unless `caller` holds it). */
  run(id: string, operation: EntityOperation, caller?: string): Promise<EntityOutcome> {
    return new Promise<EntityOutcome>((resolve, reject) => this.enqueue(id, { kind: 'operation', operation, caller, settle: { resolve, reject } }));
  }

  /** Queues a signal; its failure is logged, as nobody awaits it. */
  signal(id: string, operation: EntityOperation, caller?: string): void {
    this.run(id, operation, caller).catch((error: unknown) => this.log.error(`durable: entity ${id} ${operation.name}: ${describe(error)}`));
  }

  /** Locks the entities one after another in the given (sorted) order, so two sections never deadlock. */
  async acquire(holder: LockHolder, ids: readonly string[]): Promise<void> {
    for (const id of ids) await new Promise<void>((resolve, reject) => this.enqueue(id, { kind: 'lock', holder, settle: { resolve, reject } }));
  }

  /** Releases the holder's lock on each entity (a no-op where it holds none). */
  async release(holder: LockHolder, ids: readonly string[]): Promise<void> {
    await Promise.all(ids.map((id) => new Promise<void>((resolve, reject) => this.enqueue(id, { kind: 'release', holder, settle: { resolve, reject } }))));
  }

  /**
   * After a restart: a lock whose holder no longer holds it (finished, released before the crash let the
   * entity know, or restarted with continue-as-new) is released; the rest stay with their orchestrations.
   */
  async reconcileLocks(stillHeld: (holder: LockHolder, id: string) => Promise<boolean>): Promise<number> {
    let released = 0;
    for await (const row of this.table.listEntities<EntityRow>({ queryOptions: { filter: "RowKey eq 'entity' and lockOwner ne ''" } })) {
      if (!row.partitionKey || !row.lockOwner || row.lockRequestId === undefined) continue;
      const holder = { owner: row.lockOwner, requestId: row.lockRequestId };
      if (await stillHeld(holder, row.partitionKey)) continue;
      await this.release(holder, [row.partitionKey]);
      released++;
    }
    return released;
  }

  /** Entities of one name that exist, as the extension's entity query lists them (`lastOperationTime` is the row's). */
  async list(name: string): Promise<{ key: string; lastOperationTime: string | undefined; state: string }[]> {
    const prefix = schedulerId(name, '');
    const found: { key: string; lastOperationTime: string | undefined; state: string }[] = [];
    const filter = odata`PartitionKey ge ${prefix} and PartitionKey lt ${`${prefix.slice(0, -1)}A`} and RowKey eq 'entity'`;
    for await (const row of this.table.listEntities<EntityRow>({ queryOptions: { filter } })) {
      if (row.exists !== true || !row.partitionKey?.startsWith(prefix)) continue;
      found.push({ key: row.partitionKey.slice(prefix.length), lastOperationTime: row.timestamp, state: row.state ?? 'null' });
    }
    return found;
  }

  async readState(id: string): Promise<string | undefined> {
    const row = await this.readRow(id);
    return row?.exists ? (row.state ?? 'null') : undefined;
  }

  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private enqueue(id: string, request: EntityRequest): void {
    let slot = this.slots.get(id);
    if (!slot) {
      slot = { loaded: false, lock: undefined, queue: [], pumping: false };
      this.slots.set(id, slot);
    }
    slot.queue.push(request);
    this.pump(id, slot);
  }

  private pump(id: string, slot: EntitySlot): void {
    if (slot.pumping) return;
    slot.pumping = true;
    const tracked = this.drain(id, slot).finally(() => {
      slot.pumping = false;
      this.inFlight.delete(tracked);
      // A request enqueued between the drain's last look and now found the slot pumping: pump again.
      if (slot.queue.some((r) => eligible(slot.lock, r))) this.pump(id, slot);
      else if (slot.queue.length === 0 && !slot.lock && this.slots.get(id) === slot) this.slots.delete(id);
    });
    this.inFlight.add(tracked);
  }

  private async drain(id: string, slot: EntitySlot): Promise<void> {
    for (;;) {
      try {
        if (!slot.loaded) {
          const row = await this.readRow(id);
          slot.lock = row?.lock;
          slot.loaded = true;
        }
      } catch (error) {
        for (const request of slot.queue.splice(0)) request.settle.reject(error);
        return;
      }
      const index = slot.queue.findIndex((r) => eligible(slot.lock, r));
      if (index < 0) return; // everything left waits for the lock's release
      const [request] = slot.queue.splice(index, 1);
      if (request) await this.process(id, slot, request);
    }
  }

  private async process(id: string, slot: EntitySlot, request: EntityRequest): Promise<void> {
    try {
      if (request.kind === 'operation') {
        request.settle.resolve(await this.execute(id, slot, request.operation));
        return;
      }
      const held = slot.lock;
      if (request.kind === 'lock' && !(held?.owner === request.holder.owner && held.requestId === request.holder.requestId)) {
        await this.writeLock(id, request.holder);
        slot.lock = request.holder;
      } else if (request.kind === 'release' && held?.owner === request.holder.owner && held.requestId === request.holder.requestId) {
        await this.writeLock(id, undefined);
        slot.lock = undefined;
      }
      request.settle.resolve();
    } catch (error) {
      request.settle.reject(error);
    }
  }

  private async writeLock(id: string, lock: LockHolder | undefined): Promise<void> {
    await this.table.upsertEntity({ partitionKey: id, rowKey: 'entity', lockOwner: lock?.owner ?? '', lockRequestId: lock?.requestId ?? '' }, 'Merge');
  }

  private async execute(id: string, slot: EntitySlot, operation: EntityOperation): Promise<EntityOutcome> {
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
    await this.table.upsertEntity({
      partitionKey: id, rowKey: 'entity', exists,
      ...(exists && state.entityState ? { state: state.entityState } : {}),
      lockOwner: slot.lock?.owner ?? '', lockRequestId: slot.lock?.requestId ?? '',
    }, 'Replace');
    for (const s of state.signals)
      this.signal(schedulerId(s.target.name, s.target.key), { id: `${operation.id}:${s.name}`, name: s.name, signal: true, input: s.input || undefined });
    return { isError: false, result: result?.result ?? undefined };
  }

  private async readRow(id: string): Promise<{ exists: boolean; state: string | undefined; lock: LockHolder | undefined } | undefined> {
    try {
      const row = await this.table.getEntity<EntityRow>(id, 'entity');
      const lock = row.lockOwner ? { owner: row.lockOwner, requestId: row.lockRequestId ?? '' } : undefined;
      return { exists: row.exists === true, state: row.state, lock };
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
