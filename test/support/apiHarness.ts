import { HttpRequest, InvocationContext, type HttpResponseInit } from '@azure/functions';
import { TableClient } from '@azure/data-tables';
import type { ApiRoute, ApiServices } from '../../functions/http/apiRoute';
import { invokeApiRoute } from '../../functions/http/apiRoute';
import { apiRoutes } from '../../functions/apiRoutes';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { TableEventStore } from '../../infra/tables/tableEventStore';
import { TableWorkspaceRecords } from '../../infra/tables/tableWorkspaceRecords';
import { EncryptedTableVault } from '../../infra/vault/encryptedTableVault';
import { LocalFileKeyWrapper } from '../../infra/vault/localFileKeyWrapper';
import { CachingSecretResolver } from '../../infra/vault/secretResolver';
import { systemClock } from '../../infra/system/systemClock';
import { systemRandom } from '../../infra/system/systemRandom';
import { randomUuidIds } from '../../infra/system/randomUuidIds';
import { readSecretMetadata } from '../../domain/services/secrets';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { azuriteConnectionString, uniqueName } from './azurite';
import { createTestIssuer, type TestIssuer } from './testIssuer';

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: unknown;
}

function matchRoute(template: string, pathname: string): Record<string, string> | undefined {
  const names: string[] = [];
  const pattern = template.replace(/\{([^}]+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  const match = new RegExp(`^/api/${pattern}$`).exec(pathname);
  if (!match) return undefined;
  return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1] ?? '')]));
}

/** The API's route handlers over real Table storage (Azurite) and a real vault, called in-process. */
export async function createApiHarness() {
  const connection = azuriteConnectionString();
  const eventTable = TableClient.fromConnectionString(connection, uniqueName('events'), { allowInsecureConnection: true });
  const vaultTable = TableClient.fromConnectionString(connection, uniqueName('vault'), { allowInsecureConnection: true });
  await eventTable.createTable();
  await vaultTable.createTable();
  const keyDir = mkdtempSync(path.join(tmpdir(), 'dp-master-'));
  const store = new TableEventStore(eventTable, { clock: systemClock, random: systemRandom, ids: randomUuidIds });
  const vault = new EncryptedTableVault({ table: vaultTable, keyWrapper: LocalFileKeyWrapper.open(path.join(keyDir, 'master.key')), clock: systemClock });
  const resolver = new CachingSecretResolver({
    vault,
    clock: systemClock,
    ttlMs: 30_000,
    currentVersion: async (workspaceId, name) => {
      return (await readSecretMetadata(deps, workspaceId, name))?.version;
    },
  });
  const deps: ServiceDependencies = { store, vault, resolver, clock: systemClock, random: systemRandom, ids: randomUuidIds };
  const issuer: TestIssuer = await createTestIssuer();
  const services: ApiServices = { deps, authenticator: issuer.authenticator, records: new TableWorkspaceRecords(eventTable, store.projectionSeal) };
  const logs: string[] = [];
  const responses: ApiResponse[] = [];

  async function call(
    method: string,
    pathAndQuery: string,
    options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
  ): Promise<ApiResponse> {
    const url = new URL(pathAndQuery, 'http://127.0.0.1:7071');
    let route: ApiRoute | undefined;
    let params: Record<string, string> | undefined;
    for (const candidate of apiRoutes) {
      const found = candidate.method === method ? matchRoute(candidate.route, url.pathname) : undefined;
      if (found) {
        route = candidate;
        params = found;
        break;
      }
    }
    if (!route || !params) throw new Error(`no route for ${method} ${url.pathname}`);
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const request = new HttpRequest({
      method,
      url: url.toString(),
      headers,
      params,
      query: Object.fromEntries(url.searchParams.entries()),
      ...(body !== undefined && method !== 'GET' && method !== 'HEAD' ? { body: { string: body } } : {}),
    });
    const context = new InvocationContext({
      functionName: route.name,
      logHandler: (level, ...args) => logs.push(`${level} ${args.map(String).join(' ')}`),
    });
    const result: HttpResponseInit = await invokeApiRoute(route, services, request, context);
    const text = result.jsonBody !== undefined ? JSON.stringify(result.jsonBody) : typeof result.body === 'string' ? result.body : '';
    const response: ApiResponse = {
      status: result.status ?? 200,
      headers: Object.fromEntries(Object.entries((result.headers as Record<string, string> | undefined) ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      text,
      json: text ? (JSON.parse(text) as unknown) : undefined,
    };
    responses.push(response);
    return response;
  }

  return { services, deps, store, vault, resolver, issuer, eventTable, vaultTable, logs, responses, call };
}

export type ApiHarness = Awaited<ReturnType<typeof createApiHarness>>;
