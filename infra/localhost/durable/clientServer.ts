import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventType } from './historyEvents';
import type { InstanceStore } from './instanceStore';
import { schedulerId, type EntityRunner } from './entities';
import type { DeliverResult, OrchestrationEngine } from './orchestrationEngine';
import { filterFromQuery, matchesFilter, statusView } from './statusView';
import { RPC_PREFIX, WEBHOOK_PREFIX } from './clientBinding';

const MAX_BODY_BYTES = 1024 * 1024 + 64 * 1024;

export interface ClientServerDeps {
  readonly engine: OrchestrationEngine;
  readonly store: InstanceStore;
  readonly entities: EntityRunner;
  /** Registered orchestrator names by lower-cased name (function names are case-insensitive). */
  readonly orchestrators: ReadonlyMap<string, string>;
  /** The host's HTTP port, on which these routes are served. */
  readonly port: number;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * The Durable extension's HTTP API as durable-functions' DurableClient and the management URLs call it
 * (start, status, query, raise event, terminate, suspend, resume, purge), served on the host's port under
 * `/runtime/webhooks/durabletask`, to loopback Host names only, behind a key generated at each start.
 */
export class ClientServer {
  readonly key = randomBytes(32).toString('base64url');
  private readonly keyDigest = digest(this.key);

  constructor(private readonly deps: ClientServerDeps) {}

  get port(): number {
    return this.deps.port;
  }

  private keyMatches(candidate: string | null): boolean {
    return candidate !== null && timingSafeEqual(digest(candidate), this.keyDigest);
  }

  /** The route below the prefix, or undefined when the request does not carry the key. */
  private authorise(url: URL): string | undefined {
    const path = url.pathname;
    const below = (prefix: string): boolean => path.toLowerCase().startsWith(`${prefix.toLowerCase()}/`);
    if (below(RPC_PREFIX)) {
      const rest = path.slice(RPC_PREFIX.length + 1);
      const slash = rest.indexOf('/');
      return slash > 0 && this.keyMatches(decodeURIComponent(rest.slice(0, slash))) ? rest.slice(slash + 1) : undefined;
    }
    if (below(WEBHOOK_PREFIX) && this.keyMatches(url.searchParams.get('code'))) return path.slice(WEBHOOK_PREFIX.length + 1);
    return undefined;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      // Only loopback names: a page in a browser cannot reach these routes through DNS rebinding.
      const host = (req.headers.host ?? '').toLowerCase();
      if (!LOOPBACK_NAMES.some((name) => host === `${name}:${this.port}`)) throw new HttpError(403, 'Forbidden');
      const url = new URL(req.url ?? '/', `http://127.0.0.1:${this.port}`);
      const route = this.authorise(url);
      if (route === undefined) throw new HttpError(401, 'Unauthorized');
      const body = await readBody(req);
      const { status, json } = await this.route(req.method ?? 'GET', route.split('/').map(decodeURIComponent), url.searchParams, body);
      send(res, status, json);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      send(res, status, { message: error instanceof HttpError ? error.message : 'The local Durable engine failed to handle the request.' });
    }
  }

  /** The extension's entity query (`GET …/entities/<name>`): `fetchState`, `top`, `lastOperationTimeFrom`/`To`. */
  private async listEntities(name: string, query: URLSearchParams): Promise<{ status: number; json: unknown }> {
    const from = Date.parse(query.get('lastOperationTimeFrom') ?? '');
    const to = Date.parse(query.get('lastOperationTimeTo') ?? '');
    const top = Number(query.get('top') ?? '');
    const fetchState = query.get('fetchState') === 'true';
    const rows = (await this.deps.entities.list(name)).filter((r) => {
      const at = Date.parse(r.lastOperationTime ?? '');
      return (Number.isNaN(from) || at >= from) && (Number.isNaN(to) || at <= to);
    });
    const page = Number.isInteger(top) && top > 0 ? rows.slice(0, top) : rows;
    return {
      status: 200,
      json: page.map((r) => ({
        entityId: { name: name.toLowerCase(), key: r.key },
        lastOperationTime: r.lastOperationTime,
        ...(fetchState ? { state: JSON.parse(r.state) as unknown } : {}),
      })),
    };
  }

  /** The extension's entity API: GET reads the state (404 when none), POST `?op=` signals an operation. */
  private async entity(method: string, name: string, key: string, query: URLSearchParams, body: string): Promise<{ status: number; json: unknown }> {
    const { entities } = this.deps;
    const id = schedulerId(name, key);
    if (method === 'GET') {
      const state = await entities.readState(id);
      if (state === undefined) throw new HttpError(404, `No entity '${id}' found.`);
      return { status: 200, json: JSON.parse(state) as unknown };
    }
    if (method !== 'POST') throw new HttpError(405, 'Method not allowed');
    if (!entities.hasEntity(name)) throw new HttpError(404, `No entity function named '${name}'.`);
    const input = body === '' ? undefined : validJson(body);
    entities.signal(id, { id: randomUUID(), name: query.get('op') || 'default', signal: true, input });
    return { status: 202, json: {} };
  }

  /**
   * The extension's restart (the binding's restartPostUri): the same orchestrator and input again, under a
   * new instance id unless `restartWithNewInstanceId=false`, which needs the instance to have finished.
   */
  private async restart(id: string, newId: boolean): Promise<{ status: number; json: unknown }> {
    const record = await this.deps.store.getInstance(id);
    if (!record) throw new HttpError(404, `No instance with ID '${id}' found.`);
    const instanceId = newId ? randomUUID().replace(/-/g, '') : id;
    const result = await this.deps.engine.start(record.name, instanceId, record.input);
    if (result === 'exists') throw new HttpError(409, `An instance with ID '${instanceId}' is still running.`);
    return { status: 202, json: { id: instanceId } };
  }

  private async route(method: string, parts: string[], query: URLSearchParams, body: string): Promise<{ status: number; json: unknown }> {
    const { engine, store } = this.deps;
    const [head, id, action, name] = parts;
    if (head === 'orchestrators' && method === 'POST' && id) {
      const registered = this.deps.orchestrators.get(id.toLowerCase());
      if (!registered) throw new HttpError(400, `The function '${id}' doesn't exist, is disabled, or is not an orchestrator function.`);
      const instanceId = action && action !== '' ? action : randomUUID().replace(/-/g, '');
      const input = body === '' ? undefined : validJson(body);
      const result = await engine.start(registered, instanceId, input);
      if (result === 'exists') throw new HttpError(409, `An instance with ID '${instanceId}' already exists.`);
      return { status: 202, json: { id: instanceId } }; // only the id: management URLs carry the key
    }
    if (head === 'entities' && id && action !== undefined && parts.length === 3) return this.entity(method, id, action, query, body);
    if (head === 'entities' && id && parts.length === 2 && method === 'GET') return this.listEntities(id, query);
    if (head !== 'instances') throw new HttpError(404, 'Not found');

    if (!id) {
      const filter = filterFromQuery(query);
      const records = (await store.listInstances()).filter((r) => matchesFilter(r, filter));
      if (method === 'GET') return { status: 200, json: records.map((r) => statusView(r, { showInput: query.get('showInput') !== 'false' })) };
      if (method === 'DELETE') {
        let deleted = 0;
        for (const r of records) if ((await engine.purge(r.instanceId)) === 'purged') deleted++;
        return deleted > 0 ? { status: 200, json: { instancesDeleted: deleted } } : { status: 404, json: { instancesDeleted: 0 } };
      }
      throw new HttpError(405, 'Method not allowed');
    }

    if (!action) {
      if (method === 'GET') {
        const record = await store.getInstance(id);
        if (!record) throw new HttpError(404, `No instance with ID '${id}' found.`);
        const showHistory = query.get('showHistory') === 'true';
        const history = showHistory ? await store.readHistory(id, record.executionId, record.historyCount) : undefined;
        const view = statusView(record, { showInput: query.get('showInput') !== 'false', showHistoryOutput: query.get('showHistoryOutput') === 'true', ...(history ? { history } : {}) });
        return { status: record.status === 'Pending' || record.status === 'Running' ? 202 : 200, json: view };
      }
      if (method === 'DELETE') {
        const result = await engine.purge(id);
        if (result === 'notFound') throw new HttpError(404, `No instance with ID '${id}' found.`);
        return { status: 200, json: { instancesDeleted: result === 'purged' ? 1 : 0 } };
      }
      throw new HttpError(405, 'Method not allowed');
    }

    if (method !== 'POST') throw new HttpError(405, 'Method not allowed');
    const at = new Date().toISOString();
    const reason = query.get('reason') ?? '';
    let delivered: DeliverResult;
    if (action === 'raiseEvent' && name) {
      const input = body === '' ? undefined : validJson(body);
      delivered = await engine.deliver(id, undefined, { EventType: EventType.EventRaised, EventId: -1, Timestamp: at, Name: name, ...(input !== undefined ? { Input: input } : {}) });
    } else if (action === 'terminate') {
      delivered = await engine.deliver(id, undefined, { EventType: EventType.ExecutionTerminated, EventId: -1, Timestamp: at, Input: JSON.stringify(reason) }, controlKey(engine));
    } else if (action === 'restart') {
      return this.restart(id, query.get('restartWithNewInstanceId') !== 'false');
    } else if (action === 'rewind') {
      const rewound = await engine.rewind(id, reason);
      if (rewound === 'notFound') throw new HttpError(404, `No instance with ID '${id}' found.`);
      // Plain strings: durable-functions makes the body its Error's message.
      if (rewound === 'notFailed') return { status: 412, json: 'The rewind operation is only supported on failed orchestration instances.' };
      if (rewound === 'unsupported') return { status: 501, json: 'The local Durable engine does not rewind an instance with retried tasks or one that failed inside a critical section.' };
      return { status: 202, json: { id } };
    } else if (action === 'suspend' || action === 'resume') {
      const type = action === 'suspend' ? EventType.ExecutionSuspended : EventType.ExecutionResumed;
      delivered = await engine.deliver(id, undefined, { EventType: type, EventId: -1, Timestamp: at, Reason: reason }, controlKey(engine));
    } else throw new HttpError(404, 'Not found');
    if (delivered === 'notFound') throw new HttpError(404, `No instance with ID '${id}' found.`);
    if (delivered === 'terminal') return { status: 410, json: { message: `Instance '${id}' has already finished.` } };
    return { status: 202, json: { id } };
  }
}

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

/** Answers a request that reached the routes before the engine started or after it stopped. */
export function sendUnavailable(res: ServerResponse): void {
  send(res, 503, { message: 'The local Durable engine is not running.' });
}

const controlKey = (engine: OrchestrationEngine): string => `c-${engine.nextOrder()}-${randomBytes(4).toString('hex')}`;

function validJson(text: string): string {
  try {
    JSON.parse(text);
    return text;
  } catch {
    throw new HttpError(400, 'The request body is not valid JSON.');
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, 'The request body is too large.');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, json: unknown): void {
  const text = JSON.stringify(json);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
