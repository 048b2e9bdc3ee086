import { TableClient } from '@azure/data-tables';
import { HttpRequest, InvocationContext } from '@azure/functions';
import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import type { RecordedEvent } from '../../../domain/events';
import type { SandboxHandle } from '../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../domain/redaction';
import type { RunEvent } from '../../../domain/run';
import { runStreamId } from '../../../domain/streams';
import { onRun } from '../../../domain/services/runStream';
import { handleGatewayOperation } from '../../../functions/gateway.http';
import type { Gateway } from '../../../domain/services/gateway';
import { sandboxGateway } from '../../../functions/gateway.wiring';
import type { GatewayLimits } from '../../../infra/gateway/sandboxGatewayOperations';
import { TableGatewayBearers } from '../../../infra/gateway/tableGatewayBearers';
import { InMemoryRunSandboxes } from '../../../infra/runs/inMemoryRunSandboxes';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { createApiHarness } from '../../support/apiHarness';
import { azuriteConnectionString, uniqueName } from '../../support/azurite';

export interface SecretSpec {
  readonly name: string;
  readonly value: string;
  readonly allowedHosts: readonly string[];
  /** The owner's uses; omitted, a new secret's default (git, npm, http for members). */
  readonly uses?: Readonly<Record<string, unknown>>;
}

export interface LaunchedRun {
  readonly workspaceId: string;
  readonly runId: string;
  readonly sandbox: SandboxHandle;
  readonly bearer: string;
  readonly deadline: string;
}

export interface GatewayReply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

const AGENT_GIT_ENV = { GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@example.invalid', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@example.invalid' };

/**
 * The gateway over real parts: the API's use cases on Azurite (workspaces and secrets set through the
 * routes), the bearer table on Azurite, a LocalProcessSandboxHost sandbox registered as the run lifecycle
 * would register it, and the route handler called with a real HttpRequest.
 */
export async function createGatewayHarness(options: { testServers?: () => readonly string[] } = {}) {
  const api = await createApiHarness();
  const owner = await api.issuer.token('alice');
  const bearerTable = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('gatewaybearers'), { allowInsecureConnection: true });
  await bearerTable.createTable();
  const bearers = new TableGatewayBearers(bearerTable);
  // Isolated sandboxes reach the tests' loopback servers only as declared test servers.
  const host = await LocalProcessSandboxHost.open({ warn: () => undefined, ...(options.testServers ? { egress: { testServers: options.testServers } } : {}) });
  const sandboxes = new InMemoryRunSandboxes();
  const gateway = sandboxGateway({ deps: api.deps, bearers, sandboxes, host, limits: { operationTimeoutMs: 60_000 } });
  const launched: SandboxHandle[] = [];
  const logs: string[] = [];

  async function workspace(name: string, secrets: readonly SecretSpec[]): Promise<string> {
    const created = await api.call('POST', '/api/workspaces', { token: owner, body: { name } });
    expect(created.status).toBe(201);
    const id = (created.json as { id: string }).id;
    for (const s of secrets) await setSecret(id, s);
    return id;
  }

  async function setSecret(workspaceId: string, s: SecretSpec): Promise<void> {
    const set = await api.call('PUT', `/api/workspaces/${workspaceId}/secrets/${s.name}`, { token: owner, body: { value: s.value, allowedHosts: s.allowedHosts, ...(s.uses ? { uses: s.uses } : {}) } });
    expect([200, 201]).toContain(set.status);
  }

  /** A requested run with a live sandbox and a bearer for its container, as the lifecycle's seed leaves it. */
  /** `requestedBy` is whose uses the gateway checks each operation against (the run's requester). */
  async function launch(workspaceId: string, known: readonly SecretSpec[], files: Record<string, string> = {}, requestedBy = 'alice'): Promise<LaunchedRun> {
    const runId = randomUUID();
    const deadline = new Date(Date.now() + 10 * 60_000).toISOString();
    await onRun(api.deps, workspaceId, runId, { type: 'RequestRun', runId, workspaceId, deadline, specRef: `spec:${runId}`, specDigest: 'unused' }, { actor: requestedBy, correlationId: runId });
    const managed = known.map((s) => ({ name: s.name, value: s.value }));
    const redactor = createRedactor(managed);
    const guard = { secretNames: managed.map((m) => m.name), managedValues: managed };
    const sandbox = await host.create({ runId, files, redactor, guard, env: AGENT_GIT_ENV });
    launched.push(sandbox);
    sandboxes.put({ workspaceId, runId, handle: sandbox, redactor, guard, deadline });
    const bearer = await bearers.mint({ workspaceId, runId, containerId: sandbox.sandboxId, expiresAt: deadline });
    return { workspaceId, runId, sandbox, bearer, deadline };
  }

  /** The same parts behind a gateway with other limits. */
  function gatewayWith(limits: Partial<GatewayLimits>): Gateway {
    return sandboxGateway({ deps: api.deps, bearers, sandboxes, host, limits });
  }

  async function operate(bearer: string | undefined, body: unknown, headers: Record<string, string> = {}, via: Gateway = gateway): Promise<GatewayReply> {
    const request = new HttpRequest({
      method: 'POST',
      url: 'http://127.0.0.1:7071/api/gateway/operations',
      headers: { 'content-type': 'application/json', ...(bearer !== undefined ? { authorization: `Bearer ${bearer}` } : {}), ...headers },
      body: { string: JSON.stringify(body) },
    });
    const context = new InvocationContext({ functionName: 'gatewayOperations', logHandler: (level, ...args) => logs.push(`${level} ${args.map(String).join(' ')}`) });
    const response = await handleGatewayOperation(via, request, context);
    const text = response.jsonBody !== undefined ? JSON.stringify(response.jsonBody) : typeof response.body === 'string' ? response.body : '';
    return {
      status: response.status ?? 200,
      headers: Object.fromEntries(Object.entries((response.headers as Record<string, string> | undefined) ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
      text,
      json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  async function runEvents(run: { workspaceId: string; runId: string }): Promise<readonly RecordedEvent<RunEvent>[]> {
    return (await api.store.readStream<RunEvent>(run.workspaceId, runStreamId(run.runId))).events as readonly RecordedEvent<RunEvent>[];
  }

  /** What the run lifecycle's teardown does for the gateway: the sandbox leaves the registry, the bearers die. */
  async function teardown(run: LaunchedRun): Promise<void> {
    sandboxes.remove(run.runId);
    await bearers.revokeRun(run.workspaceId, run.runId);
    await host.teardown(run.sandbox);
  }

  async function close(): Promise<void> {
    for (const sandbox of launched) await host.teardown(sandbox);
  }

  return { api, owner, bearers, bearerTable, host, sandboxes, gateway, gatewayWith, logs, workspace, setSecret, launch, operate, runEvents, teardown, close };
}

export type GatewayHarness = Awaited<ReturnType<typeof createGatewayHarness>>;
