import { randomBytes } from 'node:crypto';

/**
 * The data-plane state and secret routes of one fake vault, in Key Vault's REST wire format
 * (https://learn.microsoft.com/rest/api/keyvault/secrets): bundles with `id`, `value`, `tags`, `contentType`
 * and `attributes` whose times are Unix seconds; soft-deleted secrets under /deletedsecrets.
 */
export interface SecretVersion {
  readonly version: string;
  readonly value: string;
  readonly contentType?: string;
  readonly tags?: Record<string, string>;
  readonly created: number;
}

export interface StoredSecret {
  readonly name: string;
  readonly versions: SecretVersion[];
  deleted?: { deletedDate: number; scheduledPurgeDate: number };
}

export interface FakeResponse {
  readonly status: number;
  readonly body?: unknown;
}

export interface SecretRouteContext {
  readonly baseUrl: string;
  readonly secrets: Map<string, StoredSecret>;
  readonly nowSeconds: number;
  readonly retentionDays: number;
  readonly purgeProtection: boolean;
  readonly pageSize: number;
}

const notFound = (code: string, message: string): FakeResponse => ({ status: 404, body: { error: { code, message } } });

function attributes(ctx: SecretRouteContext, created: number): Record<string, unknown> {
  return {
    enabled: true,
    created,
    updated: created,
    recoveryLevel: ctx.purgeProtection ? 'Recoverable' : 'Recoverable+Purgeable',
    recoverableDays: ctx.retentionDays,
  };
}

function item(ctx: SecretRouteContext, secret: StoredSecret, version: SecretVersion, withValue: boolean): Record<string, unknown> {
  return {
    ...(withValue ? { value: version.value } : {}),
    id: `${ctx.baseUrl}/secrets/${secret.name}/${version.version}`,
    ...(version.contentType ? { contentType: version.contentType } : {}),
    ...(version.tags ? { tags: version.tags } : {}),
    attributes: attributes(ctx, version.created),
  };
}

function deletedItem(ctx: SecretRouteContext, secret: StoredSecret, withValue: boolean): Record<string, unknown> {
  const latest = secret.versions[secret.versions.length - 1] as SecretVersion;
  return {
    ...item(ctx, secret, latest, withValue),
    recoveryId: `${ctx.baseUrl}/deletedsecrets/${secret.name}`,
    deletedDate: secret.deleted?.deletedDate,
    scheduledPurgeDate: secret.deleted?.scheduledPurgeDate,
  };
}

/** Key Vault pages with `nextLink`; the SDK follows it. */
function page(ctx: SecretRouteContext, url: URL, items: unknown[]): FakeResponse {
  const skip = Number(url.searchParams.get('$skiptoken') ?? '0');
  const size = Math.min(Number(url.searchParams.get('maxresults') ?? ctx.pageSize), ctx.pageSize);
  const next = new URL(url.toString());
  next.searchParams.set('$skiptoken', String(skip + size));
  return { status: 200, body: { value: items.slice(skip, skip + size), nextLink: skip + size < items.length ? next.toString() : null } };
}

export function handleSecretRoute(ctx: SecretRouteContext, method: string, url: URL, body: unknown): FakeResponse {
  const parts = url.pathname.split('/').filter(Boolean);
  const [collection, rawName, rest, extra] = parts;
  const key = rawName?.toLowerCase() ?? '';
  const secret = ctx.secrets.get(key);
  const live = secret && !secret.deleted ? secret : undefined;

  if (collection === 'secrets' && rawName === undefined && method === 'GET') {
    const items = [...ctx.secrets.values()]
      .filter((s) => !s.deleted)
      .map((s) => item(ctx, s, s.versions[s.versions.length - 1] as SecretVersion, false));
    return page(ctx, url, items);
  }
  if (collection === 'secrets' && rawName !== undefined) {
    if (!/^[0-9a-zA-Z-]{1,127}$/.test(rawName)) return { status: 400, body: { error: { code: 'BadParameter', message: 'Invalid secret name' } } };
    if (method === 'PUT' && rest === undefined) {
      if (secret?.deleted)
        return {
          status: 409,
          body: {
            error: {
              code: 'Conflict',
              message: `Secret ${rawName} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
            },
          },
        };
      const request = body as { value?: unknown; tags?: Record<string, string>; contentType?: string };
      if (typeof request.value !== 'string') return { status: 400, body: { error: { code: 'BadParameter', message: 'value is required' } } };
      if (Buffer.byteLength(request.value) > 25 * 1024) return { status: 400, body: { error: { code: 'BadParameter', message: 'too large' } } };
      if (request.tags && Object.keys(request.tags).length > 15) return { status: 400, body: { error: { code: 'BadParameter', message: 'too many tags' } } };
      for (const value of Object.values(request.tags ?? {}))
        if (value.length > 256) return { status: 400, body: { error: { code: 'BadParameter', message: 'tag too long' } } };
      const stored = live ?? { name: rawName, versions: [] };
      const version: SecretVersion = {
        version: randomBytes(16).toString('hex'),
        value: request.value,
        created: ctx.nowSeconds,
        ...(request.contentType ? { contentType: request.contentType } : {}),
        ...(request.tags ? { tags: request.tags } : {}),
      };
      stored.versions.push(version);
      ctx.secrets.set(key, stored);
      return { status: 200, body: item(ctx, stored, version, true) };
    }
    if (method === 'GET' && rest === 'versions') {
      if (!live) return notFound('SecretNotFound', `A secret with (name/id) ${rawName} was not found in this key vault.`);
      return page(ctx, url, live.versions.map((v) => item(ctx, live, v, false)));
    }
    if (method === 'GET' && extra === undefined) {
      const version = rest ? live?.versions.find((v) => v.version === rest) : live?.versions[live.versions.length - 1];
      if (!live || !version) return notFound('SecretNotFound', `A secret with (name/id) ${rawName} was not found in this key vault.`);
      return { status: 200, body: item(ctx, live, version, true) };
    }
    if (method === 'DELETE' && rest === undefined) {
      if (!live) return notFound('SecretNotFound', `A secret with (name/id) ${rawName} was not found in this key vault.`);
      live.deleted = { deletedDate: ctx.nowSeconds, scheduledPurgeDate: ctx.nowSeconds + ctx.retentionDays * 86400 };
      return { status: 200, body: deletedItem(ctx, live, false) };
    }
  }
  if (collection === 'deletedsecrets') {
    if (rawName === undefined && method === 'GET')
      return page(ctx, url, [...ctx.secrets.values()].filter((s) => s.deleted).map((s) => deletedItem(ctx, s, false)));
    const deleted = secret?.deleted ? secret : undefined;
    if (!deleted) return notFound('SecretNotFound', `Deleted Secret not found: ${rawName}`);
    if (method === 'GET' && rest === undefined) return { status: 200, body: deletedItem(ctx, deleted, true) };
    if (method === 'POST' && rest === 'recover') {
      delete deleted.deleted;
      return { status: 200, body: item(ctx, deleted, deleted.versions[deleted.versions.length - 1] as SecretVersion, false) };
    }
    if (method === 'DELETE' && rest === undefined) {
      if (ctx.purgeProtection)
        return { status: 403, body: { error: { code: 'Forbidden', message: "Operation 'purge' is not allowed on this vault (purge protection)." } } };
      ctx.secrets.delete(key);
      return { status: 204 };
    }
  }
  return { status: 404, body: { error: { code: 'NotFound', message: `No route ${method} ${url.pathname}` } } };
}
