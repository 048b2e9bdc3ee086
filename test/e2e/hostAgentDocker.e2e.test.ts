import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEMO_AGENT } from '../../localhost/demo';
import { azuriteConnectionString } from '../support/azurite';
import { containersOfScope, describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../support/dockerEngine';
import { startGitHttpServer, type GitHttpServer } from '../support/gitHttpServer';
import { type HostAgentProcess, startHostAgent, until } from '../support/hostAgentProcess';
import { scanTexts } from '../support/leakScan';
import type { LocalHostProcess } from '../support/localHostProcess';
import { processesHolding } from '../support/processLeaks';
import { agentFixture, apiClient, backendEnv, type Call, durableTexts, isFinished, type RunView, startBackend, tokenFor, waitForRun } from './runHarness';

/**
 * The whole production path on one machine: the local host (`npm start`) with SANDBOX_HOST=remote serves the
 * host channel; a real `npm run host-agent -- --inner docker` enrols for a workspace and runs the run's sandbox
 * as a container on the real dockerd. The run clones and pushes through the gateway to a real git server, takes
 * env and file leases, and a hostile turn tries what an agent's code would: another process's lease, the host's
 * loopback (Azurite, the API, the host channel) and writing to storage.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const hash = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 16);
const huntHash = (v: string): string => createHash('sha256').update(`hunt:${v}`).digest('hex').slice(0, 24);
const VALUES = {
  GIT_TOKEN: 'git-agentdocker-token-5b8e2c7a1d',
  OPENAI_API_KEY: 'sk-agentdocker-model-key-7f3a9c1e4b',
  TRACKER_KEY: 'trk-agentdocker-tracker-key-2d6f8a0c',
  ENV_KEY: 'env-agentdocker-secret-value-31ab31ab',
  FILE_KEY: 'file-agentdocker-secret-value-64cd64cd',
};

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describeWithDocker('a run through the local host and an enrolled host agent with the Docker host inside', engine, ({ docker, socketPath }) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-agentdocker-e2e-'));
  const env = backendEnv();
  const storageProbe = `hostile-${process.pid}-${Date.now()}`;
  let host: LocalHostProcess;
  let agent: HostAgentProcess;
  let owner: Call;
  let git: GitHttpServer;
  let ws: string;
  let channelPort = 0;
  let run: RunView;
  let transcript = '';

  beforeAll(async () => {
    const image = await sandboxImageForTests(docker);
    git = await startGitHttpServer(VALUES.GIT_TOKEN);
    await git.createRepo('project', { 'README.md': '# project\n' });
    channelPort = await freePort();
    Object.assign(env, { SANDBOX_HOST: 'remote', HOST_CHANNEL_PORT: String(channelPort), HOST_CHANNEL_TLS_DIR: path.join(dir, 'tls') });
    host = await startBackend(env);
    owner = apiClient(() => host.url, await tokenFor('alice', env));
    ws = ((await owner('POST', '/api/workspaces', { name: 'Agent with Docker' })).json as { id: string }).id;
    const uses: Record<keyof typeof VALUES, Record<string, string>> = {
      GIT_TOKEN: { git: 'members' }, OPENAI_API_KEY: { model: 'members' }, TRACKER_KEY: { mcp: 'members' }, ENV_KEY: { command: 'members' }, FILE_KEY: { command: 'members' },
    };
    for (const [name, value] of Object.entries(VALUES)) {
      const extra = name === 'GIT_TOKEN' ? { allowedHosts: [new URL(git.origin).host] } : {};
      expect((await owner('PUT', `/api/workspaces/${ws}/secrets/${name}`, { value, uses: uses[name as keyof typeof VALUES], ...extra })).status, name).toBe(201);
    }
    const { enrolmentToken } = (await owner('POST', `/api/workspaces/${ws}/hosts`, { name: 'docker-e2e-box' })).json as { enrolmentToken: string };
    agent = startHostAgent({
      platform: `https://127.0.0.1:${channelPort}`, ca: path.join(dir, 'tls', 'cert.pem'), state: path.join(dir, 'agent.json'), token: enrolmentToken,
      // The gateway as this machine reaches it (the agent runtime's GATEWAY_URL), and the git server as a declared test server.
      flags: ['--inner', 'docker', '--image', image, '--scope', scope, '--gateway-url', `${host.url}/api/gateway/operations`, '--egress-test-servers', new URL(git.origin).host],
      env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` },
    });
    await until(async () => ((await owner('GET', `/api/workspaces/${ws}/hosts`)).json as { lastSeenAt?: string }[])[0]?.lastSeenAt !== undefined, 'the agent to connect', 240_000, agent);

    const connection = azuriteConnectionString();
    const azurite = [...connection.matchAll(/Endpoint=http:\/\/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1]));
    const blobPort = Number(/BlobEndpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(connection)?.[1]);
    const loopback: Array<[string, number]> = [...azurite.map((p): [string, number] => ['127.0.0.1', p]), ['127.0.0.1', channelPort], ['::1', host.port]];
    const plan = {
      tcp: loopback,
      viaProxy: [...loopback.map(([h, p]) => (h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`)), `127.0.0.1:${host.port}`, `localhost:${host.port}`],
      blobPort, apiPort: host.port, container: storageProbe,
    };
    const started = await owner('POST', `/api/workspaces/${ws}/runs`, {
      template: { files: { 'agent.js': DEMO_AGENT, 'check.js': agentFixture('check.js'), 'mcp.js': agentFixture('mcp.js'), 'hostile.js': agentFixture('hostile.js') } },
      install: [
        { command: ['node', 'check.js', 'env', 'ENV_KEY'], secrets: [{ ref: 'ENV_KEY', use: 'env', as: 'ENV_KEY' }] },
        { command: ['node', 'check.js', 'file', 'FILE_KEY_PATH'], secrets: [{ ref: 'FILE_KEY', use: 'file', as: 'FILE_KEY_PATH' }] },
      ],
      mcp: [{ name: 'issues', command: ['node', 'mcp.js'], secrets: [{ ref: 'TRACKER_KEY', use: 'env', as: 'TRACKER_KEY' }] }],
      turns: [
        // A remote the git token may not go to: the gateway refuses it before any connection.
        { command: ['node', 'agent.js', `${git.origin}/project.git`, 'http://127.0.0.1:9/elsewhere.git'], modelKey: 'OPENAI_API_KEY' },
        { command: ['node', 'hostile.js', JSON.stringify(plan)], modelKey: 'OPENAI_API_KEY' },
      ],
      deadlineSeconds: 240,
    });
    expect(started.status, started.text).toBe(202);
    const { runId } = started.json as { runId: string };
    run = await waitForRun(owner, ws, runId, isFinished, 240_000);
    transcript = (await owner('GET', `/api/workspaces/${ws}/runs/${runId}/transcript`)).text;
  }, 600_000);

  afterAll(async () => {
    await agent?.stop();
    await host?.stop();
    await git?.close();
    await removeScope(docker, scope);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('completes every phase on the agent: clone and push through the gateway, env and file leases, a redacted transcript', () => {
    expect(run.status, `${JSON.stringify(run.phases)}\n${transcript}\n${agent.output()}`).toBe('Completed');
    expect(run.phases.map((p) => `${p.phase}${p.turn ?? ''}:${p.status}`)).toEqual(['seed:Completed', 'install:Completed', 'mcp:Completed', 'turn1:Completed', 'turn2:Completed', 'teardown:Completed']);
    expect(transcript).toMatch(new RegExp(`gateway git clone ${git.origin}/project.git -> HTTP 200 ok`));
    expect(transcript).toMatch(new RegExp(`gateway git push ${git.origin}/project.git -> HTTP 200 ok`));
    expect(transcript).toMatch(/gateway git push http:\/\/127\.0\.0\.1:9\/elsewhere\.git -> HTTP 403/);
    expect(transcript).toContain('GIT_TOKEN in my env? no');
    expect(git.leaks).toEqual([]);
    expect(transcript).toContain(`check env ENV_KEY=${hash(VALUES.ENV_KEY)}`);
    expect(transcript).toMatch(new RegExp(`check file FILE_KEY_PATH mode=600 outside-workspace=true value=${hash(VALUES.FILE_KEY)}`));
    // Printed carelessly and masked: by the agent first (what it delivered), then by the platform's redactor.
    expect(transcript).toMatch(/careless print of my model key: \[REDACTED:[A-Z_]+\]\n/);
    expect(transcript).toMatch(/mcp careless-print \[REDACTED:[A-Z_]+\]\n/);
    const granted = run.events.filter((e) => e.type === 'LeaseGranted');
    const released = new Set(run.events.filter((e) => e.type === 'LeaseReleased').map((e) => e.data.leaseId));
    for (const lease of granted) expect(released.has(lease.data.leaseId), String(lease.data.operation)).toBe(true);
  });

  it('the pushed commit is on the git server', async () => {
    const committed = /agent: committed ([0-9a-f]{40})/.exec(transcript)?.[1];
    expect(committed).toBeDefined();
    expect(await git.revParse('project', 'main')).toBe(committed);
  });

  it("a hostile turn in the agent's container reads no other process's lease, reaches nothing of the host's loopback and writes no storage", async () => {
    const line = /^.*hostile (\{.*\})$/m.exec(transcript)?.[1];
    expect(line, transcript).toBeDefined();
    const hunt = JSON.parse(line ?? '{}') as { pids: number; readable: number; hashes: string[]; net: Record<string, string> };
    // The control: the hunt read what it may (its own environ, with its own model key), among the container's processes.
    expect(hunt.hashes).toContain(huntHash(VALUES.OPENAI_API_KEY));
    expect(hunt.pids).toBeGreaterThan(2);
    // The MCP server beside it holds TRACKER_KEY for the whole turn; nothing else of the run's values is anywhere.
    for (const name of ['TRACKER_KEY', 'GIT_TOKEN', 'ENV_KEY', 'FILE_KEY'] as const) expect(hunt.hashes, name).not.toContain(huntHash(VALUES[name]));
    for (const [attempt, outcome] of Object.entries(hunt.net)) {
      if (attempt.startsWith('tcp ')) expect(outcome, attempt).not.toBe('connected');
      if (attempt.startsWith('proxy ')) expect(outcome, attempt).toBe('403');
    }
    expect(hunt.net.storageDirect).not.toMatch(/^2\d\d/);
    expect(hunt.net.storageViaProxy).not.toMatch(/^2\d\d/);
    expect(hunt.net.apiBesideGateway).not.toMatch(/^2\d\d/);
    const blobs = BlobServiceClient.fromConnectionString(azuriteConnectionString());
    expect(await blobs.getContainerClient(storageProbe).exists()).toBe(false);
  });

  it('no value in the run, the audit (verified), Durable history or the transcript; no container, credential file or process left holding one', async () => {
    const audit = (await owner('GET', `/api/workspaces/${ws}/audit?limit=500`)).text;
    const texts = [{ where: 'run', text: JSON.stringify(run) }, { where: 'audit', text: audit }, { where: 'transcript', text: transcript }, { where: 'agent output', text: agent.output() }, ...(await durableTexts(env.DURABLE_TASK_HUB))];
    expect(scanTexts(texts, VALUES)).toEqual([]);
    expect((await owner('GET', `/api/workspaces/${ws}/audit/verify`)).json).toMatchObject({ ok: true });
    const filePath = /check file-path (\S+)/.exec(transcript)?.[1];
    expect(filePath).toBeDefined();
    expect(existsSync(filePath ?? '')).toBe(false);
    await until(async () => (await containersOfScope(docker, scope)).length === 0, 'the run container to go', 60_000, agent);
    for (const value of Object.values(VALUES)) expect(processesHolding(value), 'a process holding a value').toEqual([]);
  });
});
