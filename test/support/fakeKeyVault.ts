import { createServer, type Agent, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { PipelinePolicy } from '@azure/core-rest-pipeline';
import { handleSecretRoute, type FakeResponse, type StoredSecret } from './fakeKeyVaultSecrets';
import { FAKE_ARM_HOST, FAKE_DOMAIN, FAKE_VAULT_SUFFIX, agentPolicy, fakeAgent, makeTestTls, type TestTls } from './fakeKeyVaultTls';

/**
 * A local stand-in for Azure Key Vault, because no emulator exists: one HTTPS server that answers both the
 * ARM control plane (`management.azure.test`: vault create, get, delete, get deleted, purge deleted, recover
 * via createMode 'recover') and each vault's data plane (`{name}.vault.azure.test`, routed by Host header),
 * in the real wire formats, including the 401 bearer challenge Key Vault's SDK authenticates from.
 * Its clock is injected so retention and purge protection can be tested without waiting.
 */
export interface FakeVault {
  readonly name: string;
  readonly resourceGroup: string;
  readonly location: string;
  properties: Record<string, unknown>;
  tags: Record<string, string>;
  state: 'active' | 'deleted';
  deletionDate?: Date;
  scheduledPurgeDate?: Date;
  readonly secrets: Map<string, StoredSecret>;
}

export interface FakeKeyVaultOptions {
  readonly now: () => Date;
  /** Items per list page (Key Vault's default is 25); small values exercise nextLink paging. */
  readonly pageSize?: number;
  readonly tenantId?: string;
}

export const VAULT_RESOURCE = `https://${FAKE_VAULT_SUFFIX}`;
const VAULT_NAME = /^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/;

export class FakeKeyVault {
  readonly vaults = new Map<string, FakeVault>();
  /** Every request the fake answered, as `METHOD host path`: tests assert the SDK took the path they expect. */
  readonly requests: string[] = [];
  /** Data-plane requests to answer 403 per vault name, as Key Vault does while a role assignment propagates. */
  readonly forbidden = new Map<string, number>();
  /**
   * Vault names held outside this subscription (another tenant's vault, live or soft-deleted): invisible to our
   * GETs, and a create answers 409 VaultAlreadyExists, as Azure does because vault names are global.
   */
  readonly takenElsewhere = new Set<string>();
  /** Like `takenElsewhere`, for every name it matches. */
  takenElsewherePattern: RegExp | undefined;
  readonly agent: Agent;
  readonly policy: PipelinePolicy;
  private port = 0;

  private constructor(
    private readonly server: Server,
    private readonly options: FakeKeyVaultOptions,
    tls: TestTls,
  ) {
    this.agent = fakeAgent(tls, (host) => this.resolves(host));
    this.policy = agentPolicy(this.agent);
  }

  static async start(options: FakeKeyVaultOptions): Promise<FakeKeyVault> {
    const tls = makeTestTls();
    let fake: FakeKeyVault | undefined;
    const server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const response = fake?.handle(req.method ?? 'GET', req.headers.host ?? '', req.url ?? '/', req.headers, raw) ?? { status: 500 };
        const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'x-ms-request-id': `${Date.now()}` };
        if (response.status === 401)
          headers['www-authenticate'] = response.challenge ?? 'Bearer';
        res.writeHead(response.status, headers);
        res.end(response.body === undefined ? undefined : JSON.stringify(response.body));
      });
    });
    fake = new FakeKeyVault(server, options, tls);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fake.port = (server.address() as AddressInfo).port;
    return fake;
  }

  get armEndpoint(): string {
    return `https://${FAKE_ARM_HOST}:${this.port}`;
  }

  vaultUri(name: string): string {
    return `https://${name.toLowerCase()}.${FAKE_VAULT_SUFFIX}:${this.port}/`;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A deleted or purged vault's host name stops resolving, as in Azure. */
  private resolves(host: string): boolean {
    if (host === FAKE_ARM_HOST) return true;
    const name = host.endsWith(`.${FAKE_VAULT_SUFFIX}`) ? host.slice(0, -(FAKE_VAULT_SUFFIX.length + 1)) : undefined;
    return name !== undefined && this.vaults.get(name)?.state === 'active';
  }

  private handle(
    method: string,
    hostHeader: string,
    rawUrl: string,
    headers: Record<string, string | string[] | undefined>,
    raw: string,
  ): FakeResponse & { challenge?: string } {
    const host = hostHeader.replace(/:\d+$/, '').toLowerCase();
    const url = new URL(rawUrl, `https://${hostHeader}`);
    this.requests.push(`${method} ${host} ${url.pathname}`);
    const token = /^Bearer fake-token:(.+)$/.exec(String(headers.authorization ?? ''))?.[1];
    const body = raw ? (JSON.parse(raw) as unknown) : undefined;
    if (host === FAKE_ARM_HOST) {
      if (!token?.startsWith(`https://${FAKE_ARM_HOST}`))
        return { status: 401, body: { error: { code: 'AuthenticationFailed', message: 'Missing or wrong-audience bearer token' } } };
      return this.handleArm(method, url, body);
    }
    const vault = this.vaults.get(host.slice(0, -(FAKE_VAULT_SUFFIX.length + 1)));
    if (!host.endsWith(`.${FAKE_VAULT_SUFFIX}`) || vault?.state !== 'active') return { status: 404, body: { error: { code: 'VaultNotFound' } } };
    // Key Vault answers an unauthenticated request with a challenge naming the authority and the resource.
    if (token !== `${VAULT_RESOURCE}/.default`)
      return {
        status: 401,
        body: { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } },
        challenge: `Bearer authorization="https://login.microsoftonline.${FAKE_DOMAIN}/${this.options.tenantId ?? 'tenant'}", resource="${VAULT_RESOURCE}"`,
      };
    const forbidden = this.forbidden.get(vault.name) ?? 0;
    if (forbidden > 0) {
      this.forbidden.set(vault.name, forbidden - 1);
      return { status: 403, body: { error: { code: 'Forbidden', message: 'Caller is not authorized to perform action on resource.', innererror: { code: 'ForbiddenByRbac' } } } };
    }
    const nowSeconds = Math.floor(this.options.now().getTime() / 1000);
    return handleSecretRoute(
      {
        baseUrl: this.vaultUri(vault.name).replace(/\/$/, ''),
        secrets: vault.secrets,
        nowSeconds,
        retentionDays: Number(vault.properties.softDeleteRetentionInDays ?? 90),
        purgeProtection: vault.properties.enablePurgeProtection === true,
        pageSize: this.options.pageSize ?? 25,
      },
      method,
      url,
      body,
    );
  }

  private handleArm(method: string, url: URL, body: unknown): FakeResponse {
    const listPath = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults$/i.exec(url.pathname);
    if (listPath && method === 'GET') {
      const [, subscription, resourceGroup] = listPath as unknown as [string, string, string];
      // Live vaults of the group only: a soft-deleted vault is no longer a resource of its group.
      const inGroup = [...this.vaults.values()].filter((v) => v.state === 'active' && v.resourceGroup === resourceGroup);
      const top = Number(url.searchParams.get('$top') ?? 25);
      const size = Math.max(1, Math.min(top, this.options.pageSize ?? 25));
      const skip = Number(url.searchParams.get('$skiptoken') ?? 0);
      const page = inGroup.slice(skip, skip + size);
      const next = new URL(url.toString());
      next.searchParams.set('$skiptoken', String(skip + size));
      return {
        status: 200,
        body: { value: page.map((v) => this.vaultJson(subscription, v)), ...(skip + size < inGroup.length ? { nextLink: next.toString() } : {}) },
      };
    }
    const vaultPath = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.KeyVault\/vaults\/([^/]+)$/i.exec(url.pathname);
    const deletedPath = /^\/subscriptions\/([^/]+)\/providers\/Microsoft\.KeyVault\/locations\/([^/]+)\/deletedVaults\/([^/]+)(\/purge)?$/i.exec(url.pathname);
    const now = this.options.now();
    if (vaultPath) {
      const [, subscription, resourceGroup, rawName] = vaultPath as unknown as [string, string, string, string];
      const name = rawName.toLowerCase();
      const existing = this.vaults.get(name);
      if (method === 'GET')
        return existing?.state === 'active' && existing.resourceGroup === resourceGroup
          ? { status: 200, body: this.vaultJson(subscription, existing) }
          : { status: 404, body: { error: { code: 'ResourceNotFound', message: `The Resource 'Microsoft.KeyVault/vaults/${rawName}' was not found.` } } };
      if (method === 'DELETE') {
        if (existing?.state !== 'active') return { status: 204 };
        existing.state = 'deleted';
        existing.deletionDate = now;
        existing.scheduledPurgeDate = new Date(now.getTime() + Number(existing.properties.softDeleteRetentionInDays ?? 90) * 86400_000);
        return { status: 200 };
      }
      if (method === 'PUT') {
        const request = body as { location?: string; tags?: Record<string, string>; properties?: Record<string, unknown> };
        if (request.properties?.createMode === 'recover') {
          if (existing?.state !== 'deleted')
            return { status: 404, body: { error: { code: 'ResourceNotFound', message: 'No deleted vault to recover' } } };
          existing.state = 'active';
          delete existing.deletionDate;
          delete existing.scheduledPurgeDate;
          return { status: 200, body: this.vaultJson(subscription, existing) };
        }
        if (this.takenElsewhere.has(name) || this.takenElsewherePattern?.test(name))
          return {
            status: 409,
            body: { error: { code: 'VaultAlreadyExists', message: `The vault name '${rawName}' is already in use. Vault names are globally unique so it is possible that the name is already taken.` } },
          };
        if (!VAULT_NAME.test(rawName))
          return { status: 400, body: { error: { code: 'VaultNameNotValid', message: 'Vault names are 3-24 characters of letters, digits and single hyphens' } } };
        if (existing?.state === 'deleted')
          return { status: 409, body: { error: { code: 'ConflictError', message: `A vault with the same name already exists in deleted state.` } } };
        if (existing && existing.resourceGroup !== resourceGroup)
          return { status: 409, body: { error: { code: 'VaultAlreadyExists', message: 'The vault name is already in use.' } } };
        const vault: FakeVault = existing ?? {
          name,
          resourceGroup,
          location: request.location ?? 'westeurope',
          properties: {},
          tags: {},
          state: 'active',
          secrets: new Map(),
        };
        vault.properties = { ...vault.properties, ...request.properties };
        vault.tags = request.tags ?? vault.tags;
        this.vaults.set(name, vault);
        return { status: 200, body: this.vaultJson(subscription, vault) };
      }
    }
    if (deletedPath) {
      const [, subscription, location, rawName, purge] = deletedPath as unknown as [string, string, string, string, string | undefined];
      const vault = this.vaults.get(rawName.toLowerCase());
      if (vault?.state !== 'deleted' || vault.location !== location)
        return { status: 404, body: { error: { code: 'ResourceNotFound', message: `Deleted vault ${rawName} not found` } } };
      if (method === 'GET') return { status: 200, body: this.deletedVaultJson(subscription, vault) };
      if (method === 'POST' && purge) {
        if (vault.properties.enablePurgeProtection === true && now < (vault.scheduledPurgeDate ?? now))
          return { status: 409, body: { error: { code: 'Conflict', message: 'The vault is purge-protected until its scheduled purge date' } } };
        this.vaults.delete(vault.name);
        return { status: 200 };
      }
    }
    return { status: 404, body: { error: { code: 'NotFound', message: `No route ${method} ${url.pathname}` } } };
  }

  private vaultJson(subscription: string, vault: FakeVault): unknown {
    return {
      id: `/subscriptions/${subscription}/resourceGroups/${vault.resourceGroup}/providers/Microsoft.KeyVault/vaults/${vault.name}`,
      name: vault.name,
      type: 'Microsoft.KeyVault/vaults',
      location: vault.location,
      tags: vault.tags,
      properties: { ...vault.properties, createMode: undefined, vaultUri: this.vaultUri(vault.name), provisioningState: 'Succeeded' },
    };
  }

  private deletedVaultJson(subscription: string, vault: FakeVault): unknown {
    return {
      id: `/subscriptions/${subscription}/providers/Microsoft.KeyVault/locations/${vault.location}/deletedVaults/${vault.name}`,
      name: vault.name,
      type: 'Microsoft.KeyVault/deletedVaults',
      properties: {
        vaultId: `/subscriptions/${subscription}/resourceGroups/${vault.resourceGroup}/providers/Microsoft.KeyVault/vaults/${vault.name}`,
        location: vault.location,
        deletionDate: vault.deletionDate?.toISOString(),
        scheduledPurgeDate: vault.scheduledPurgeDate?.toISOString(),
        purgeProtectionEnabled: vault.properties.enablePurgeProtection === true,
        tags: vault.tags,
      },
    };
  }
}
