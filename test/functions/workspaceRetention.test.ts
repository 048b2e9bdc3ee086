import { beforeAll, describe, expect, it } from 'vitest';
import { requestWorkspaceDeletion } from '../../domain/services/workspaceLifecycle';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';

let h: ApiHarness;
let owner: string;
const alice = { actor: 'alice', correlationId: 'retention-test' };

beforeAll(async () => {
  h = await createApiHarness();
  owner = await h.issuer.token('alice');
});

const create = (body: unknown) => h.call('POST', '/api/workspaces', { token: owner, body });
const days = (purgeAfter: unknown, from: number): number => Math.round((Date.parse(String(purgeAfter)) - from) / 86_400_000);

describe('a workspace chooses its retention when it is created', () => {
  it('POST /api/workspaces {name, retentionDays} fixes it; DELETE uses it and refuses another', async () => {
    const made = await create({ name: 'Short', retentionDays: 14 });
    expect(made.status).toBe(201);
    expect(made.json).toMatchObject({ name: 'Short', retentionDays: 14 });
    const ws = (made.json as { id: string }).id;
    const other = await h.call('DELETE', `/api/workspaces/${ws}?retentionDays=30`, { token: owner });
    expect(other.status).toBe(400);
    expect(other.headers['content-type']).toBe('application/problem+json');
    // What the route records before it starts the deletion orchestration (no Durable host in this harness).
    const from = Date.now();
    expect(days((await requestWorkspaceDeletion(h.deps, alice, ws)).purgeAfter, from)).toBe(14);
  });

  it('without retentionDays the default stays as before: chosen at deletion, 90 days unless said', async () => {
    const made = await create({ name: 'Default' });
    expect(made.status).toBe(201);
    expect(made.json).not.toHaveProperty('retentionDays');
    const ws = (made.json as { id: string }).id;
    const from = Date.now();
    expect(days((await requestWorkspaceDeletion(h.deps, alice, ws, 7)).purgeAfter, from)).toBe(7);
    const third = (await create({ name: 'Default too' })).json as { id: string };
    expect(days((await requestWorkspaceDeletion(h.deps, alice, third.id)).purgeAfter, from)).toBe(90);
  });

  it('refuses a retention outside 7-90 whole days, or of the wrong type, as problem+json', async () => {
    for (const retentionDays of [6, 91, 7.5, '14', null]) {
      const refused = await create({ name: 'Bad', retentionDays });
      expect(refused.status).toBe(400);
      expect(refused.headers['content-type']).toBe('application/problem+json');
    }
  });
});
