import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { createApiHarness } from '../../../support/apiHarness';
import { containersOfScope, describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';

/**
 * `npm run host-agent -- --inner docker`: the agent owns the Docker engine and the platform reaches its sandboxes
 * only through the channel (no engine call crosses it). Runs against the engine at DOCKER_HOST.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const projectRoot = path.resolve(__dirname, '../../../..');
const LEASE = 'docker-agent-lease-Kp4rW7tY2uI9oP3a';

describeWithDocker('a host agent with the Docker host inside', engine, ({ docker, socketPath }) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-agent-docker-'));
  let channel: HostChannelServer;
  let remote: RemoteSandboxHost;
  let agent: ChildProcess;
  let ws: string;
  let output = '';
  const frames: string[] = [];

  async function until(check: () => boolean, what: string, ms = 120_000): Promise<void> {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${output}`);
      if (agent.exitCode !== null) throw new Error(`the agent exited: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    const image = await sandboxImageForTests(docker);
    const api = await createApiHarness();
    const alice = await api.issuer.token('alice');
    ws = ((await api.call('POST', '/api/workspaces', { token: alice, body: { name: 'Docker box' } })).json as { id: string }).id;
    const tls = selfSignedCertificate(path.join(dir, 'tls'));
    channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(api.deps), tap: (_direction, raw) => void frames.push(raw) });
    remote = new RemoteSandboxHost(channel);
    const { enrolmentToken } = (await api.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'docker-box' } })).json as { enrolmentToken: string };
    agent = spawn(process.execPath, [
      path.join(projectRoot, 'scripts', 'hostAgent.js'), '--platform', channel.url, '--ca', tls.certFile, '--state', path.join(dir, 'agent.json'),
      '--token', enrolmentToken, '--inner', 'docker', '--image', image, '--scope', scope,
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` } });
    agent.stdout?.on('data', (d) => (output += String(d)));
    agent.stderr?.on('data', (d) => (output += String(d)));
    await until(() => channel.liveHosts(ws).length === 1, 'the agent to connect');
  }, 600_000);

  afterAll(async () => {
    if (agent?.exitCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
    await channel?.close();
    await removeScope(docker, scope);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('runs a sandbox in a container of its own: files, a lease delivered to one process and redacted, teardown removes the container', async () => {
    expect(remote.capabilities).toEqual({ isolated: true });
    const request: SandboxRequest = {
      runId: 'run-docker-agent', files: { 'hello.txt': 'hello from the template' }, placement: { workspaceId: ws },
      redactor: createRedactor([{ name: 'LEASE', value: LEASE }]), guard: { secretNames: ['LEASE'], managedValues: [{ name: 'LEASE', value: LEASE }] },
    };
    const handle = await remote.create(request);
    expect(handle.isolated).toBe(true);
    expect(await containersOfScope(docker, scope)).toHaveLength(1);

    const cat = await remote.exec(handle, { argv: ['cat', 'hello.txt'], identity: 'agent' });
    expect(cat).toMatchObject({ exitCode: 0, stdout: 'hello from the template' });
    const leased = await remote.exec(handle, {
      argv: ['sh', '-c', 'echo "lease=$LEASE"; id -u'], identity: 'credential',
      credentials: async () => [{ env: { LEASE }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    expect(leased.exitCode, leased.stderr).toBe(0);
    expect(leased.stdout).toMatch(/^lease=\[REDACTED:[A-Z_]+\]\n\d+\n$/);
    const after = await remote.exec(handle, { argv: ['sh', '-c', 'echo "${LEASE:-none}"; id -u'], identity: 'agent' });
    expect(after.stdout.split('\n')[0]).toBe('none');
    // The lease ran under a credential uid of its own, not the agent's.
    expect(after.stdout.split('\n')[1]).not.toBe(leased.stdout.split('\n')[1]);

    // Only the process's own exec carried the value; nothing the agent sent back did.
    const carrying = frames.filter((f) => f.includes(LEASE));
    expect(carrying.length).toBe(1);
    expect(JSON.parse(carrying[0] ?? '{}')).toMatchObject({ body: { op: 'exec' } });

    // Output streams from the container through the agent while the process runs.
    const streamed: string[] = [];
    const running = await remote.start(handle, {
      argv: ['sh', '-c', 'echo tick; while [ ! -e release ]; do sleep 0.05; done; echo bye'], identity: 'agent',
      onOutput: (_stream, text) => streamed.push(text),
    });
    const streamDeadline = Date.now() + 60_000;
    while (!streamed.join('').includes('tick\n') && Date.now() < streamDeadline) await new Promise((r) => setTimeout(r, 50));
    expect(streamed.join('')).toBe('tick\n');
    await remote.exec(handle, { argv: ['touch', 'release'], identity: 'agent' });
    expect(await running.exited).toMatchObject({ exitCode: 0, stdout: 'tick\nbye\n' });

    await remote.teardown(handle);
    const deadline = Date.now() + 60_000;
    while ((await containersOfScope(docker, scope)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await containersOfScope(docker, scope)).toEqual([]);
  }, 300_000);
});
