import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { setSecret } from '../../domain/services/secrets';
import { Gateway } from '../../infra/gateway/gatewayService';
import { LiveLeases } from '../../infra/runs/liveLeases';
import { systemClock } from '../../infra/system/systemClock';
import { CachingSecretResolver } from '../../infra/vault/secretResolver';
import { createGatewayHarness, type GatewayHarness } from '../infra/gateway/gatewayHarness';

/** An http API that records each Authorization header and answers only when the test lets it. */
interface HeldApi {
  origin: string;
  seen: string[];
  arrived: Promise<void>;
  release: () => void;
  close(): Promise<void>;
}

async function startHeldApi(): Promise<HeldApi> {
  let onArrive: () => void = () => undefined;
  let hold: Promise<void> = Promise.resolve();
  const api: HeldApi = { origin: '', seen: [], arrived: Promise.resolve(), release: () => undefined, close: async () => undefined };
  const server = http.createServer((req, res) => {
    api.seen.push(String(req.headers.authorization ?? ''));
    onArrive();
    void hold.then(() => res.end('done'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const holdNext = () => {
    api.arrived = new Promise<void>((resolve) => (onArrive = resolve));
    hold = new Promise<void>((resolve) => (api.release = resolve));
  };
  holdNext();
  return Object.assign(api, {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
    holdNext,
  });
}

const OLD = 'gw-revoke-old-value-0123456789abcdef';
const NEW = 'gw-revoke-new-value-fedcba9876543210';
let h: GatewayHarness;
let api: HeldApi & { holdNext(): void };
let leases: LiveLeases;

beforeAll(async () => {
  h = await createGatewayHarness();
  api = (await startHeldApi()) as HeldApi & { holdNext(): void };
  // A long timer: what reaches the operation in flight is the revocation's notice to this instance.
  leases = new LiveLeases(h.api.deps, { checkMs: 60_000 });
});

afterAll(async () => {
  leases?.stop();
  api?.release();
  await h?.close();
  await api?.close();
});

const caller = { actor: 'alice', correlationId: 'gateway-revocation' };

describe('the gateway under rotate vs revoke', () => {
  it('an operation in flight when its secret is revoked is aborted and refused (409), recorded LeaseRevoked; the next one sends the new value', async () => {
    const secret = { name: 'GW_KEY', value: OLD, allowedHosts: [new URL(api.origin).host] };
    const ws = await h.workspace('Gateway revoke', [secret]);
    const run = await h.launch(ws, [secret]);
    const gateway = new Gateway({ deps: h.api.deps, bearers: h.bearers, sandboxes: h.sandboxes, host: h.host, leases, limits: { operationTimeoutMs: 60_000 } });
    const pending = h.operate(run.bearer, { kind: 'http', url: `${api.origin}/held`, secret: 'GW_KEY' }, {}, gateway);
    await api.arrived;
    expect(api.seen).toEqual([`Bearer ${OLD}`]);

    const deps: ServiceDependencies = { ...h.api.deps, revocations: leases };
    const revokedAt = Date.now();
    await setSecret(deps, caller, { workspaceId: ws, name: 'GW_KEY', value: NEW, revoke: true });
    const reply = await pending;
    expect(Date.now() - revokedAt).toBeLessThan(3_000);
    expect(reply.status).toBe(409);
    expect(reply.json.code).toBe('GATEWAY.SECRET_REVOKED');
    expect(reply.text).not.toContain('done');
    const events = await h.runEvents(run);
    const grant = events.find((e) => e.type === 'LeaseGranted');
    expect(events.filter((e) => e.type === 'LeaseRevoked').map((e) => e.data)).toEqual([
      { leaseId: grant?.type === 'LeaseGranted' ? grant.data.leaseId : '', runId: run.runId, secretName: 'GW_KEY', secretVersion: 1 },
    ]);
    expect(leases.size).toBe(0);

    api.holdNext();
    api.release();
    const next = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/after`, secret: 'GW_KEY' }, {}, gateway);
    expect(next.status).toBe(200);
    expect(api.seen.at(-1)).toBe(`Bearer ${NEW}`);
    for (const e of events) expect(JSON.stringify(e)).not.toMatch(/gw-revoke-(old|new)/);
    for (const text of [reply.text, next.text]) expect(text).not.toMatch(/gw-revoke-(old|new)/);
    await h.teardown(run);
  });

  it("a revoked version is never sent, even from another instance's stale cache whose freshness row says it is current", async () => {
    const value = 'gw-stale-old-value-0123456789abcdef';
    const fresh = 'gw-stale-new-value-fedcba9876543210';
    const secret = { name: 'GW_STALE', value, allowedHosts: [new URL(api.origin).host] };
    const ws = await h.workspace('Gateway stale', [secret]);
    const stale = new CachingSecretResolver({ vault: h.api.vault, clock: systemClock, ttlMs: 3_600_000, currentVersion: async () => 1 });
    expect((await stale.resolve(ws, 'GW_STALE')).value).toBe(value);
    await setSecret(h.api.deps, caller, { workspaceId: ws, name: 'GW_STALE', value: fresh, revoke: true });
    expect((await stale.resolve(ws, 'GW_STALE')).value).toBe(value); // the cache alone would still send it

    const run = await h.launch(ws, [secret]);
    const gateway = new Gateway({ deps: { ...h.api.deps, resolver: stale }, bearers: h.bearers, sandboxes: h.sandboxes, host: h.host, limits: { operationTimeoutMs: 60_000 } });
    api.holdNext();
    api.release();
    const reply = await h.operate(run.bearer, { kind: 'http', url: `${api.origin}/stale`, secret: 'GW_STALE' }, {}, gateway);
    expect(reply.status).toBe(200);
    expect(api.seen.at(-1)).toBe(`Bearer ${fresh}`);
    expect(api.seen).not.toContain(`Bearer ${value}`);
    await h.teardown(run);
  });
});
