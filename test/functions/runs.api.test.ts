import { HttpRequest, InvocationContext } from '@azure/functions';
import { BlobServiceClient } from '@azure/storage-blob';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunOrchestrations, RunStores } from '../../domain/services/runPorts';
import { BlobRunSpecStore, BlobTranscriptStore } from '../../infra/runs/blobRunStores';
import { invokeApiRoute, type ApiRoute } from '../../functions/http/apiRoute';
import { createRunRoutes, MAX_RUN_SPEC_BYTES } from '../../functions/runs.routes';
import { createApiHarness, type ApiHarness } from '../support/apiHarness';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { scanTexts } from '../support/leakScan';

const VALUES = { OPENAI_API_KEY: 'sk-api-test-model-key-0123456789', TRACKER_KEY: 'trk-api-test-tracker-0123456789' };

/** What the routes asked of Durable: the real client needs a host; the e2e tests drive that one. */
const started: { workspaceId: string; runId: string }[] = [];
const cancelled: string[] = [];
const orchestrations: RunOrchestrations = {
  start: async (workspaceId, runId) => void started.push({ workspaceId, runId }),
  raiseCancel: async (runId) => void cancelled.push(runId),
};

let h: ApiHarness;
let routes: readonly ApiRoute[];
let stores: RunStores;
let ws: string;
let tokens: Record<'owner' | 'member' | 'outsider', string>;

function aRunSpec(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    template: { files: { 'agent.js': 'console.log("hi")', 'lib/util.js': '// secret-looking text stays out of events' } },
    env: { LOG_LEVEL: 'debug' },
    mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
    turns: [{ command: ['node', 'agent.js'], modelKey: 'OPENAI_API_KEY' }],
    deadlineSeconds: 60,
    ...overrides,
  };
}

async function call(method: string, path: string, token: string, body?: unknown, rawBody?: string, within: readonly ApiRoute[] = routes) {
  const url = new URL(path, 'http://127.0.0.1:7071');
  for (const route of within) {
    if (route.method !== method) continue;
    const names: string[] = [];
    const pattern = new RegExp(`^/api/${route.route.replace(/\{([^}]+)\}/g, (_m, n: string) => (names.push(n), '([^/]+)'))}$`);
    const match = pattern.exec(url.pathname);
    if (!match) continue;
    const text = rawBody ?? (body !== undefined ? JSON.stringify(body) : undefined);
    const request = new HttpRequest({
      method,
      url: url.toString(),
      headers: { authorization: `Bearer ${token}`, ...(text !== undefined ? { 'content-type': 'application/json' } : {}) },
      params: Object.fromEntries(names.map((n, i) => [n, match[i + 1] ?? ''])),
      ...(text !== undefined ? { body: { string: text } } : {}),
    });
    const result = await invokeApiRoute(route, h.services, request, new InvocationContext({ functionName: route.name }));
    const out = result.jsonBody !== undefined ? JSON.stringify(result.jsonBody) : typeof result.body === 'string' ? result.body : '';
    return { status: result.status ?? 200, text: out, json: out && out.startsWith('{') ? (JSON.parse(out) as Record<string, unknown>) : undefined };
  }
  throw new Error(`no route for ${method} ${path}`);
}

beforeAll(async () => {
  h = await createApiHarness();
  const blobs = BlobServiceClient.fromConnectionString(azuriteConnectionString());
  stores = {
    specs: new BlobRunSpecStore(blobs.getContainerClient(uniqueName('specs'))),
    transcripts: new BlobTranscriptStore(blobs.getContainerClient(uniqueName('transcripts'))),
  };
  routes = createRunRoutes({ stores: async () => stores, orchestrations: () => orchestrations });
  tokens = { owner: await h.issuer.token('alice'), member: await h.issuer.token('bob'), outsider: await h.issuer.token('mallory') };
  ws = ((await h.call('POST', '/api/workspaces', { token: tokens.owner, body: { name: 'Runs' } })).json as { id: string }).id;
  await h.call('PUT', `/api/workspaces/${ws}/members/bob`, { token: tokens.owner, body: { role: 'member' } });
  const uses: Record<keyof typeof VALUES, Record<string, string>> = { OPENAI_API_KEY: { model: 'members' }, TRACKER_KEY: { mcp: 'members' } };
  for (const [name, value] of Object.entries(VALUES))
    await h.call('PUT', `/api/workspaces/${ws}/secrets/${name}`, { token: tokens.owner, body: { value, uses: uses[name as keyof typeof VALUES] } });
});

describe('run routes: access', () => {
  it('members may request, read, read the transcript of and cancel a run; outsiders get 404 on each', async () => {
    const requested = await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, aRunSpec());
    expect(requested.status, requested.text).toBe(202);
    expect(Object.keys(requested.json ?? {})).toEqual(['runId']);
    const runId = String(requested.json?.runId);
    expect(started.at(-1)).toEqual({ workspaceId: ws, runId });

    const paths: [string, string][] = [
      ['GET', `/api/workspaces/${ws}/runs/${runId}`],
      ['GET', `/api/workspaces/${ws}/runs/${runId}/transcript`],
      ['POST', `/api/workspaces/${ws}/runs`],
      ['POST', `/api/workspaces/${ws}/runs/${runId}/cancel`],
    ];
    for (const [method, path] of paths) {
      const outsider = await call(method, path, tokens.outsider, method === 'POST' ? aRunSpec() : undefined);
      expect(outsider.status, `${method} ${path}`).toBe(404);
    }
    expect(started.filter((s) => s.workspaceId === ws)).toHaveLength(1);

    const view = await call('GET', `/api/workspaces/${ws}/runs/${runId}`, tokens.member);
    expect(view.status).toBe(200);
    expect(view.json).toMatchObject({ runId, status: 'Pending', phases: [] });
    expect(view.text).not.toContain('agent.js'); // the spec body stays out of the view
    expect((await call('GET', `/api/workspaces/${ws}/runs/${runId}/transcript`, tokens.member)).status).toBe(200);
    expect((await call('POST', `/api/workspaces/${ws}/runs/${runId}/cancel`, tokens.member)).status).toBe(202);
    expect(cancelled).toContain(runId);
    const after = await call('GET', `/api/workspaces/${ws}/runs/${runId}`, tokens.owner);
    expect((after.json?.events as { type: string }[]).map((e) => e.type)).toEqual(['RunRequested', 'RunCancellationRequested']);
  });

  it('a run id of another workspace is 404, as is an unknown one', async () => {
    const other = ((await h.call('POST', '/api/workspaces', { token: tokens.outsider, body: { name: 'Other' } })).json as { id: string }).id;
    const theirs = await call('POST', `/api/workspaces/${other}/runs`, tokens.outsider, { ...aRunSpec(), mcp: [], turns: [{ command: ['true'] }] });
    expect(theirs.status).toBe(202);
    expect((await call('GET', `/api/workspaces/${ws}/runs/${String(theirs.json?.runId)}`, tokens.owner)).status).toBe(404);
    expect((await call('GET', `/api/workspaces/${ws}/runs/00000000-0000-4000-8000-000000000000`, tokens.owner)).status).toBe(404);
  });
});

describe('run routes: what a RunSpec may be', () => {
  const bad: [string, Record<string, unknown>][] = [
    ['a shell string for a command', aRunSpec({ turns: [{ command: 'node agent.js && curl x' }] })],
    ['an argv of non-strings', aRunSpec({ turns: [{ command: ['node', 1] }] })],
    ['no turns', aRunSpec({ turns: [] })],
    ['a deadline under 10 s', aRunSpec({ deadlineSeconds: 5 })],
    ['a deadline over an hour', aRunSpec({ deadlineSeconds: 7200 })],
    ['an unknown field', aRunSpec({ sidecar: true })],
    ['an unknown field in a turn', aRunSpec({ turns: [{ command: ['x'], env: { A: 'b' } }] })],
    ['a secret value instead of a reference', aRunSpec({ mcp: [{ name: 'x', command: ['x'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'T', value: 'v' }] }] })],
    ['an unknown use', aRunSpec({ mcp: [{ name: 'x', command: ['x'], secrets: [{ ref: 'TRACKER_KEY', use: 'header', as: 'T' }] }] })],
    ['env use without `as`', aRunSpec({ mcp: [{ name: 'x', command: ['x'], secrets: [{ ref: 'TRACKER_KEY', use: 'env' }] }] })],
    ['an invalid `as`', aRunSpec({ mcp: [{ name: 'x', command: ['x'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'A B' }] }] })],
    ['npm use without a host', aRunSpec({ install: [{ command: ['npm', 'ci'], secrets: [{ ref: 'TRACKER_KEY', use: 'npm' }] }] })],
    ['a template path escaping the workspace', aRunSpec({ template: { files: { '../evil.js': 'x' } } })],
    ['an absolute template path', aRunSpec({ template: { files: { '/etc/passwd': 'x' } } })],
    ['a lower-case secret name', aRunSpec({ turns: [{ command: ['x'], modelKey: 'openai' }] })],
  ];
  it.each(bad)('refuses %s with 400 and starts nothing', async (_name, spec) => {
    const before = started.length;
    const reply = await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, spec);
    expect(reply.status, reply.text).toBe(400);
    expect(started.length).toBe(before);
  });

  it('refuses keepWorkspace with 422 where the sandbox host keeps no volumes, and a volume name in its place with 400; starts nothing', async () => {
    const before = started.length;
    const refused = await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, aRunSpec({ keepWorkspace: true }));
    expect(refused.status, refused.text).toBe(422);
    expect(refused.json).toMatchObject({ code: 'RUN.KEPT_WORKSPACE_UNSUPPORTED' });
    // Only a flag: a run cannot name the volume (another workspace's) it would like.
    expect((await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, aRunSpec({ keepWorkspace: 'dp-ws-0123' }))).status).toBe(400);
    expect((await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, aRunSpec({ keptVolume: 'other-ws' }))).status).toBe(400);
    expect(started.length).toBe(before);
    const keeping = createRunRoutes({ stores: async () => stores, orchestrations: () => orchestrations, keepsWorkspaces: () => true });
    const accepted = await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, aRunSpec({ keepWorkspace: true }), undefined, keeping);
    expect(accepted.status, accepted.text).toBe(202);
  });

  it('refuses a spec over 1 MiB with 413', async () => {
    const reply = await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, aRunSpec({ template: { files: { 'big.txt': 'x'.repeat(MAX_RUN_SPEC_BYTES) } } }));
    expect(reply.status).toBe(413);
  });

  it('refuses a managed value in a command argument or a template file with 422 naming where, and starts nothing', async () => {
    const value = Object.values(VALUES)[0] ?? '';
    const before = started.length;
    for (const [spec, where] of [
      [aRunSpec({ turns: [{ command: ['node', 'agent.js', `--key=${value}`] }] }), 'turns[0].command[2]'],
      [aRunSpec({ template: { files: { 'agent.js': 'console.log(1)', 'key.txt': value } } }), 'file key.txt'],
    ] as const) {
      const reply = await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, spec);
      expect(reply.status, reply.text).toBe(422);
      expect(reply.json).toMatchObject({ code: 'RUN.LAUNCH_REFUSED' });
      expect(String(reply.json?.detail)).toContain(where);
      expect(scanTexts([{ where: 'reply', text: reply.text }], VALUES)).toEqual([]);
    }
    expect(started.length).toBe(before);
  });

  it('refuses any standing env carrying a managed value in any position, naming the key and never the value', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...Object.values(VALUES)), fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), async (value, before, after) => {
        const reply = await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, aRunSpec({ env: { SOME_SETTING: `${before}${value}${after}` } }));
        expect(reply.status).toBe(422);
        expect(reply.json).toMatchObject({ code: 'RUN.LAUNCH_REFUSED' });
        expect(String(reply.json?.detail)).toContain('SOME_SETTING');
        expect(scanTexts([{ where: 'reply', text: reply.text }], VALUES)).toEqual([]);
      }),
      { numRuns: 15 },
    );
  });
});

describe("run routes: the owner's use policy per secret", () => {
  const setPolicyKey = async (uses?: unknown, token = tokens.owner) =>
    h.call('PUT', `/api/workspaces/${ws}/secrets/POLICY_KEY`, { token, body: { value: 'policy-key-value-0123456789', ...(uses !== undefined ? { uses } : {}) } });
  const asks: [string, Record<string, unknown>, string, string][] = [
    ['a turn\'s modelKey', { mcp: [], turns: [{ command: ['node', 'agent.js'], modelKey: 'POLICY_KEY' }] }, 'model', 'turns[0].modelKey'],
    ['an MCP server\'s env lease', { mcp: [{ name: 'm', command: ['node', 'mcp.js'], secrets: [{ ref: 'POLICY_KEY', use: 'env', as: 'K' }] }] }, 'mcp', 'mcp[0].secrets[0]'],
    ['an MCP server\'s file lease', { mcp: [{ name: 'm', command: ['node', 'mcp.js'], secrets: [{ ref: 'POLICY_KEY', use: 'file', as: 'K_FILE' }] }] }, 'mcp', 'mcp[0].secrets[0]'],
    ['an install command\'s env lease', { mcp: [], install: [{ command: ['node', 'setup.js'], secrets: [{ ref: 'POLICY_KEY', use: 'env', as: 'K' }] }] }, 'command', 'install[0].secrets[0]'],
    ['an install command\'s file lease', { mcp: [], install: [{ command: ['node', 'setup.js'], secrets: [{ ref: 'POLICY_KEY', use: 'file', as: 'K_FILE' }] }] }, 'command', 'install[0].secrets[0]'],
    ['an install command\'s stdin lease', { mcp: [], install: [{ command: ['node', 'setup.js'], secrets: [{ ref: 'POLICY_KEY', use: 'stdin' }] }] }, 'command', 'install[0].secrets[0]'],
  ];

  it('a new secret allows git, npm and http only, listed with its metadata', async () => {
    expect((await setPolicyKey()).status).toBe(201);
    const listed = (await h.call('GET', `/api/workspaces/${ws}/secrets`, { token: tokens.member })).json as { name: string; uses: unknown }[];
    expect(listed.find((s) => s.name === 'POLICY_KEY')?.uses).toEqual({ git: 'members', npm: 'members', http: 'members' });
  });

  it.each(asks)("a member's %s without the owner's allowed use is 422 naming the secret and the use; it works once allowed", async (_what, overrides, use, where) => {
    expect((await setPolicyKey(['git', 'npm', 'http'])).status).toBe(200);
    const before = started.length;
    const refused = await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, aRunSpec(overrides));
    expect(refused.status, refused.text).toBe(422);
    expect(refused.json).toMatchObject({ code: 'SECRET.USE_NOT_ALLOWED' });
    expect(String(refused.json?.detail)).toContain('POLICY_KEY');
    expect(String(refused.json?.detail)).toContain(`"${use}"`);
    expect(String(refused.json?.detail)).toContain(where);
    expect(started).toHaveLength(before);
    expect((await setPolicyKey({ [use]: 'members' })).status).toBe(200);
    const allowed = await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, aRunSpec(overrides));
    expect(allowed.status, allowed.text).toBe(202);
  });

  it('a refusal starts nothing and is recorded on the log', async () => {
    expect((await setPolicyKey(['git'])).status).toBe(200);
    const before = started.length;
    const refused = await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, aRunSpec(asks[0]?.[1]));
    expect(refused.status).toBe(422);
    expect(started).toHaveLength(before);
    const audit = (await h.call('GET', `/api/workspaces/${ws}/audit?limit=500`, { token: tokens.owner })).json as { records: { type: string; data: Record<string, unknown> }[] };
    expect(audit.records.filter((r) => r.type === 'SandboxLaunchRefused').at(-1)?.data).toEqual({ offendingKey: 'turns[0].modelKey', reason: 'SECRET.USE_NOT_ALLOWED' });
  });

  it('a use limited to owners refuses a member and admits an owner; one limited to named members admits exactly them', async () => {
    const modelRun = aRunSpec(asks[0]?.[1]);
    expect((await setPolicyKey({ model: 'owners' })).status).toBe(200);
    const refused = await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, modelRun);
    expect(refused.status).toBe(422);
    expect(refused.json).toMatchObject({ code: 'SECRET.USE_EXCLUDES_CALLER' });
    expect(String(refused.json?.detail)).toMatch(/POLICY_KEY.*"model".*owners/);
    expect((await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, modelRun)).status).toBe(202);
    expect((await setPolicyKey({ model: ['bob'] })).status).toBe(200);
    expect((await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, modelRun)).status).toBe(202);
    expect((await call('POST', `/api/workspaces/${ws}/runs`, tokens.owner, modelRun)).status).toBe(422);
  });

  it('a member cannot change what a secret may be used for (403), and the uses stay as the owner set them', async () => {
    expect((await setPolicyKey({ model: 'owners' })).status).toBe(200);
    const denied = await setPolicyKey({ model: 'members', command: 'members' }, tokens.member);
    expect(denied.status).toBe(403);
    const listed = (await h.call('GET', `/api/workspaces/${ws}/secrets`, { token: tokens.owner })).json as { name: string; uses: unknown }[];
    expect(listed.find((s) => s.name === 'POLICY_KEY')?.uses).toEqual({ model: 'owners' });
  });

  it('refuses malformed uses with 400', async () => {
    for (const uses of [{ env: 'members' }, { model: 'everyone' }, { model: [] }, ['model', 'shell'], 'model'])
      expect((await setPolicyKey(uses)).status, JSON.stringify(uses)).toBe(400);
  });
});

describe('run routes: reserved names in the standing env', () => {
  it.each(['LD_PRELOAD', 'NODE_OPTIONS', 'PATH', 'GIT_SSH_COMMAND'])('%s in the standing env is 422 naming it, and nothing starts', async (key) => {
    const before = started.length;
    const refused = await call('POST', `/api/workspaces/${ws}/runs`, tokens.member, aRunSpec({ env: { LOG_LEVEL: 'debug', [key]: '/tmp/evil.so' } }));
    expect(refused.status, refused.text).toBe(422);
    expect(refused.json).toMatchObject({ code: 'RUN.LAUNCH_REFUSED' });
    expect(String(refused.json?.detail)).toContain(key);
    expect(started).toHaveLength(before);
  });
});
