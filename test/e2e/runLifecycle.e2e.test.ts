import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanTexts } from '../support/leakScan';
import type { LocalHostProcess } from '../support/localHostProcess';
import { startGitHttpServer, type GitHttpServer } from '../support/gitHttpServer';
import { startNpmRegistry, type NpmRegistry } from '../support/npmRegistry';
import { processesHolding } from '../support/processLeaks';
import { agentFixture, apiClient, backendEnv, type Call, durableTexts, instanceIds, isFinished, type RunView, startBackend, tokenFor, waitForRun } from './runHarness';

const hash = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 16);

const VALUES = {
  OPENAI_API_KEY: 'sk-e2e-model-key-0123456789abcdef',
  TRACKER_KEY: 'trk-e2e-tracker-key-9f8e7d6c5b4a',
  FILE_KEY: 'file-e2e-secret-value-55aa55aa',
  STDIN_KEY: 'stdin-e2e-secret-value-77bb77bb',
  ENV_KEY: 'env-e2e-secret-value-99cc99cc',
  NPM_TOKEN: 'npm-e2e-registry-token-13579bdf',
  GIT_TOKEN: 'git-e2e-remote-token-2468ace0',
  GATE_KEY: 'gate-e2e-upstream-key-3141592653',
};
const ROTATED = { OPENAI_API_KEY: 'sk-e2e-model-key-ROTATED-fedcba9876', TRACKER_KEY: 'trk-e2e-tracker-key-ROTATED-1a2b3c' };
const ALL_VALUES: Record<string, string> = { ...VALUES, OPENAI_API_KEY_NEW: ROTATED.OPENAI_API_KEY, TRACKER_KEY_NEW: ROTATED.TRACKER_KEY };

const env = backendEnv();
let host: LocalHostProcess;
let owner: Call;
let ws: string;
let registry: NpmRegistry;
let git: GitHttpServer;
let gate: http.Server;
let gateUrl = '';

/** A RunSpec using every channel: env, file, stdin, npm and git in install; an MCP server's env lease; two turns with a model key. */
function fullSpec(): Record<string, unknown> {
  return {
    template: { files: { 'agent.js': agentFixture('agent.js'), 'mcp.js': agentFixture('mcp.js'), 'check.js': agentFixture('check.js') } },
    env: { LOG_LEVEL: 'debug', GATE_URL: gateUrl },
    install: [
      { command: ['node', 'check.js', 'env', 'ENV_KEY'], secrets: [{ ref: 'ENV_KEY', use: 'env', as: 'ENV_KEY' }] },
      { command: ['node', 'check.js', 'file', 'FILE_KEY_PATH'], secrets: [{ ref: 'FILE_KEY', use: 'file', as: 'FILE_KEY_PATH' }] },
      { command: ['node', 'check.js', 'stdin'], secrets: [{ ref: 'STDIN_KEY', use: 'stdin' }] },
      { command: ['npm', 'install', registry.packageName, '--no-audit', '--no-fund'], secrets: [{ ref: 'NPM_TOKEN', use: 'npm', host: registry.origin }] },
      { command: ['git', 'clone', '--quiet', `${git.origin}/project.git`, 'project'], secrets: [{ ref: 'GIT_TOKEN', use: 'git', host: git.origin }] },
    ],
    mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
    turns: [
      { command: ['node', 'agent.js', 'gate'], modelKey: 'OPENAI_API_KEY' },
      { command: ['node', 'agent.js', 'after-mcp', 'gateway'], modelKey: 'OPENAI_API_KEY' },
    ],
    deadlineSeconds: 300,
  };
}

/** What the owner lets each secret be used for, set explicitly; a rotation (no uses) keeps them. */
const USES: Record<string, Record<string, string>> = {
  ENV_KEY: { command: 'members' }, FILE_KEY: { command: 'members' }, STDIN_KEY: { command: 'members' },
  TRACKER_KEY: { mcp: 'members' }, OPENAI_API_KEY: { model: 'members' }, NPM_TOKEN: { npm: 'members' }, GIT_TOKEN: { git: 'members' },
  GATE_KEY: { http: 'members' },
};

async function setSecret(name: string, value: string, expected: number): Promise<void> {
  const reply = await owner('PUT', `/api/workspaces/${ws}/secrets/${name}`, { value, ...(expected === 201 ? { uses: USES[name] } : {}) });
  expect(reply.status, `set ${name}`).toBe(expected);
}

async function auditText(): Promise<{ text: string; records: { type: string; streamId: string; streamVersion: number; data: Record<string, unknown> }[] }> {
  const records: { type: string; streamId: string; streamVersion: number; data: Record<string, unknown> }[] = [];
  let after = 0;
  for (;;) {
    const reply = await owner('GET', `/api/workspaces/${ws}/audit?after=${after}&limit=500`);
    expect(reply.status).toBe(200);
    const page = reply.json as { records: typeof records; next?: number };
    records.push(...page.records);
    if (page.next === undefined) break;
    after = page.next;
  }
  return { text: JSON.stringify(records), records };
}

beforeAll(async () => {
  registry = await startNpmRegistry(VALUES.NPM_TOKEN);
  git = await startGitHttpServer(VALUES.GIT_TOKEN);
  await git.createRepo('project', { 'README.md': '# project\n' });
  // Turn 1 calls the gate; the gate rotates two secrets through the API before it answers.
  gate = http.createServer((req, res) => {
    if (req.url === '/echo') {
      // The upstream of the gateway operation: answers 200 only when the gateway injected GATE_KEY.
      res.statusCode = req.headers.authorization === `Bearer ${VALUES.GATE_KEY}` ? 200 : 401;
      res.end(`echo ${VALUES.GATE_KEY}`);
      return;
    }
    void (async () => {
      await setSecret('OPENAI_API_KEY', ROTATED.OPENAI_API_KEY, 200);
      await setSecret('TRACKER_KEY', ROTATED.TRACKER_KEY, 200);
      res.end('rotated');
    })().catch(() => ((res.statusCode = 500), res.end()));
  });
  await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
  gateUrl = `http://127.0.0.1:${(gate.address() as AddressInfo).port}/gate`;
  // Isolated sandboxes reach these loopback servers only as declared test servers (refused in production).
  const testServers = [registry.origin, git.origin, gateUrl].map((url) => new URL(url).host);
  host = await startBackend({ ...env, SANDBOX_EGRESS_TEST_SERVERS: testServers.join(',') });
  owner = apiClient(() => host.url, await tokenFor('alice', env));

  const created = await owner('POST', '/api/workspaces', { name: 'e2e runs' });
  expect(created.status, host.stderr()).toBe(201);
  ws = (created.json as { id: string }).id;
  for (const [name, value] of Object.entries(VALUES)) if (name !== 'GATE_KEY') await setSecret(name, value, 201);
  const gateHost = new URL(gateUrl).host;
  expect((await owner('PUT', `/api/workspaces/${ws}/secrets/GATE_KEY`, { value: VALUES.GATE_KEY, allowedHosts: [gateHost], uses: USES.GATE_KEY })).status).toBe(201);
}, 120_000);

afterAll(async () => {
  await host?.stop();
  await Promise.all([registry?.close(), git?.close(), new Promise((resolve) => (gate ? gate.close(resolve) : resolve(undefined)))]);
});

describe('the launch guard at the door (POST .../runs over HTTP)', () => {
  const refusals: { name: string; env: Record<string, string>; key: string }[] = [
    { name: 'a workspace secret by name', env: { TRACKER_KEY: 'anything-at-all' }, key: 'TRACKER_KEY' },
    { name: 'a well-known provider key name', env: { ANTHROPIC_API_KEY: 'whatever-value' }, key: 'ANTHROPIC_API_KEY' },
    { name: 'a managed value', env: { HARMLESS_NAME: VALUES.ENV_KEY }, key: 'HARMLESS_NAME' },
    { name: 'a managed value in base64', env: { B64_CONFIG: Buffer.from(`user:${VALUES.GIT_TOKEN}`).toString('base64') }, key: 'B64_CONFIG' },
    { name: 'a token inside a URL', env: { REPO_URL: `https://x-access-token:${encodeURIComponent(VALUES.NPM_TOKEN)}@git.example/repo.git` }, key: 'REPO_URL' },
  ];

  it.each(refusals)('refuses $name with 422 naming the key, records SandboxLaunchRefused, starts no orchestration', async ({ env: runEnv, key }) => {
    const spec = { ...fullSpec(), env: { LOG_LEVEL: 'info', ...runEnv } };
    const reply = await owner('POST', `/api/workspaces/${ws}/runs`, spec);
    expect(reply.status).toBe(422);
    expect(reply.contentType).toBe('application/problem+json');
    const problem = reply.json as { code: string; detail: string };
    expect(problem.code).toBe('RUN.LAUNCH_REFUSED');
    expect(problem.detail).toContain(key);
    expect(scanTexts([{ where: 'response', text: reply.text }], ALL_VALUES)).toEqual([]);

    const { records } = await auditText();
    const refused = records.filter((r) => r.type === 'SandboxLaunchRefused' && r.data.offendingKey === key);
    expect(refused).toHaveLength(1);
    const runId = refused[0]!.streamId.replace(/^run:/, '');
    expect(await instanceIds(env.DURABLE_TASK_HUB)).not.toContain(runId);
    expect((await owner('GET', `/api/workspaces/${ws}/runs/${runId}`)).status).toBe(404);
  });

  it('refuses a spec naming a secret that does not exist, with 422 naming the reference', async () => {
    const spec = { ...fullSpec(), turns: [{ command: ['node', 'agent.js'], modelKey: 'NO_SUCH_KEY' }] };
    const reply = await owner('POST', `/api/workspaces/${ws}/runs`, spec);
    expect(reply.status).toBe(422);
    expect(reply.json).toMatchObject({ code: 'RUN.SECRET_NOT_FOUND' });
    expect((reply.json as { detail: string }).detail).toContain('NO_SUCH_KEY');
  });
});

describe('a run through all five phases on the real local host', () => {
  let run: RunView;
  let transcript = '';
  const started = Date.now();

  beforeAll(async () => {
    const reply = await owner('POST', `/api/workspaces/${ws}/runs`, fullSpec());
    expect(reply.status, reply.text).toBe(202);
    expect(Object.keys(reply.json as object)).toEqual(['runId']);
    const { runId } = reply.json as { runId: string };
    run = await waitForRun(owner, ws, runId, isFinished);
    console.log(`e2e: POST → ${run.status} in ${Date.now() - started} ms`);
    const t = await owner('GET', `/api/workspaces/${ws}/runs/${runId}/transcript`);
    expect(t.status).toBe(200);
    expect(t.contentType).toContain('text/plain');
    transcript = t.text;
  }, 150_000);

  it('completes every phase in order and tears down once', () => {
    expect(run.status, JSON.stringify(run.phases)).toBe('Completed');
    expect(run.phases.map((p) => `${p.phase}${p.turn ?? ''}:${p.status}`)).toEqual([
      'seed:Completed', 'install:Completed', 'mcp:Completed', 'turn1:Completed', 'turn2:Completed', 'teardown:Completed',
    ]);
    expect(run.events.filter((e) => e.type === 'SandboxTornDown')).toHaveLength(1);
    expect(run.events.map((e) => e.version)).toEqual(run.events.map((_, i) => i + 1));
    expect(run.tornDown).toBe(true);
  });

  it('delivered each credential through its channel to its process, under a lease released at exit', () => {
    expect(transcript).toContain(`check env ENV_KEY=${hash(VALUES.ENV_KEY)}`);
    expect(transcript).toMatch(new RegExp(`check file FILE_KEY_PATH mode=600 outside-workspace=true value=${hash(VALUES.FILE_KEY)}`));
    expect(transcript).toContain(`check stdin value=${hash(VALUES.STDIN_KEY)}`);
    expect(registry.requests.some((r) => r.authorized)).toBe(true);
    expect(git.requests.some((r) => r.user !== undefined)).toBe(true);
    const granted = run.events.filter((e) => e.type === 'LeaseGranted');
    const released = new Set(run.events.filter((e) => e.type === 'LeaseReleased').map((e) => e.data.leaseId));
    expect(granted.map((e) => `${String(e.data.secretName)}:${String(e.data.channel)}`).sort()).toEqual([
      'ENV_KEY:process-env', 'FILE_KEY:temp-file', 'GATE_KEY:gateway-header', 'GIT_TOKEN:git-credential-helper', 'NPM_TOKEN:package-manager-config',
      'OPENAI_API_KEY:process-env', 'OPENAI_API_KEY:process-env', 'STDIN_KEY:stdin', 'TRACKER_KEY:process-env',
    ]);
    for (const lease of granted) expect(released.has(lease.data.leaseId), String(lease.data.operation)).toBe(true);
    expect(run.events.some((e) => e.type === 'LeaseExpired')).toBe(false);
  });

  it('rotation mid-run: the MCP server keeps the value it started with; the next turn gets the new one', () => {
    const turns = transcript.split('--- turn[');
    expect(turns[1]).toContain(`model-key=${hash(VALUES.OPENAI_API_KEY)}`);
    expect(turns[1]).toContain('agent gate 200');
    expect(turns[2]).toContain(`model-key=${hash(ROTATED.OPENAI_API_KEY)}`);
    // Turn 2 began after the rotation and waited for two more MCP ticks: the server spoke after the rotation.
    const advanced = /agent mcp-heartbeat advanced from (\d+)/.exec(turns[2] ?? '');
    expect(advanced).not.toBeNull();
    const ticks = [...transcript.matchAll(/mcp tick (\d+) tracker-key=(\S+)/g)].map((m) => ({ n: Number(m[1]), key: m[2] }));
    expect(ticks.some((t) => t.n > Number(advanced![1]))).toBe(true);
    expect(transcript).toContain(`mcp start tracker-key=${hash(VALUES.TRACKER_KEY)}`);
    expect(new Set(ticks.map((t) => t.key))).toEqual(new Set([hash(VALUES.TRACKER_KEY)]));
    const trackerLeases = run.events.filter((e) => e.type === 'LeaseGranted' && e.data.secretName === 'TRACKER_KEY').map((e) => e.data.secretVersion);
    expect(trackerLeases).toEqual([1]);
    const modelLeases = run.events.filter((e) => e.type === 'LeaseGranted' && e.data.secretName === 'OPENAI_API_KEY').map((e) => e.data.secretVersion);
    expect(modelLeases).toEqual([1, 2]);
  });

  it('the agent reaches the gateway with its bearer: the operation runs for this run with the secret injected', () => {
    expect(transcript).toContain('agent gateway http=200 ok=true upstream=200');
    expect(run.events.some((e) => e.type === 'OperationCompleted' || e.type === 'OperationRequested')).toBe(true);
  });

  it('gives the agent runtime its gateway URL and bearer as per-process env, and the sandbox its standing env', () => {
    expect(transcript).toContain('gateway-url=set gateway-token=set log-level=debug');
    expect(transcript).toContain('[REDACTED:OPENAI_API_KEY]');
    expect(transcript).toContain('[REDACTED:GATEWAY_TOKEN]');
    expect(transcript).toContain('[REDACTED:TRACKER_KEY]');
  });

  it('no secret value in events, audit records, Durable history, transcript or responses', async () => {
    const { text: audit } = await auditText();
    const hits = scanTexts(
      [
        { where: 'run', text: JSON.stringify(run) },
        { where: 'audit', text: audit },
        { where: 'transcript', text: transcript },
        ...(await durableTexts(env.DURABLE_TASK_HUB)),
      ],
      ALL_VALUES,
    );
    expect(hits).toEqual([]);
    expect((await owner('GET', `/api/workspaces/${ws}/audit/verify`)).json).toMatchObject({ ok: true });
  });

  it('leaves no credential file and no process holding a value', () => {
    const paths = [...transcript.matchAll(/check file-path (\S+)/g)].map((m) => m[1]!);
    expect(paths).toHaveLength(1);
    for (const file of paths) expect(existsSync(file), file).toBe(false);
    const sandboxId = run.events.find((e) => e.type === 'SandboxLaunched')?.data.sandboxId as string;
    expect(existsSync(`/dev/shm/dp-credentials/${sandboxId}`)).toBe(false);
    for (const value of Object.values(ALL_VALUES)) expect(processesHolding(value)).toEqual([]);
  });
});

describe('a trivial run', () => {
  it('one turn, no credentials: Completed, with the time from POST to Completed printed for the docs', async () => {
    const started = Date.now();
    const reply = await owner('POST', `/api/workspaces/${ws}/runs`, { template: { files: {} }, turns: [{ command: ['node', '-e', 'console.log(42)'] }], deadlineSeconds: 60 });
    expect(reply.status).toBe(202);
    const run = await waitForRun(owner, ws, (reply.json as { runId: string }).runId, isFinished);
    console.log(`e2e: trivial run POST → ${run.status} in ${Date.now() - started} ms`);
    expect(run.status).toBe('Completed');
    expect((await owner('GET', `/api/workspaces/${ws}/runs/${run.runId}/transcript`)).text).toContain('42');
  }, 60_000);
});
