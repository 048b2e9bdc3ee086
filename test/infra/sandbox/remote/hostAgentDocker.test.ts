import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { SandboxHandle, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { containersOfScope, describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { type HostAgentProcess, startHostAgent, until } from '../../../support/hostAgentProcess';
import { processesHolding } from '../../../support/processLeaks';

/**
 * `npm run host-agent -- --inner docker`: the agent owns the Docker engine and the platform reaches its sandboxes
 * only through the channel (no engine call crosses it). Runs against the engine at DOCKER_HOST.
 */
const engine = dockerForTests();
const scope = testScope(__filename);
const LEASE = 'docker-agent-lease-Kp4rW7tY2uI9oP3a';

describeWithDocker('a host agent with the Docker host inside', engine, ({ docker, socketPath }) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-agent-docker-'));
  let channel: HostChannelServer;
  let remote: RemoteSandboxHost;
  let agent: HostAgentProcess;
  let api: ApiHarness;
  let alice: string;
  let ws: string;
  let hostId: string;
  let image: string;
  let tlsCert: string;
  const frames: string[] = [];
  const state = path.join(dir, 'agent.json');

  const startAgent = (token?: string): HostAgentProcess =>
    startHostAgent({
      platform: channel.url, ca: tlsCert, state, ...(token ? { token } : {}), flags: ['--inner', 'docker', '--image', image, '--scope', scope],
      env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` },
    });

  beforeAll(async () => {
    image = await sandboxImageForTests(docker);
    api = await createApiHarness();
    alice = await api.issuer.token('alice');
    ws = ((await api.call('POST', '/api/workspaces', { token: alice, body: { name: 'Docker box' } })).json as { id: string }).id;
    const tls = selfSignedCertificate(path.join(dir, 'tls'));
    tlsCert = tls.certFile;
    channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(api.deps), tap: (_direction, raw) => void frames.push(raw) });
    // What the DELETE route cuts off (as remoteHosts.composition.ts wires it in the app).
    hostChannelControl.set(channel);
    remote = new RemoteSandboxHost(channel);
    const enrolment = (await api.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'docker-box' } })).json as { enrolmentToken: string; hostId: string };
    hostId = enrolment.hostId;
    agent = startAgent(enrolment.enrolmentToken);
    await until(() => channel.liveHosts(ws).length === 1 || agent.child.exitCode !== null, 'the agent to connect', 240_000, agent);
    if (agent.child.exitCode !== null) throw new Error(`the agent exited: ${agent.output()}`);
  }, 600_000);

  afterAll(async () => {
    await agent?.stop();
    hostChannelControl.set(undefined);
    await channel?.close();
    await removeScope(docker, scope);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  const leasedRequest = (runId: string): SandboxRequest => ({
    runId, files: {}, placement: { workspaceId: ws },
    redactor: createRedactor([{ name: 'LEASE', value: LEASE }]), guard: { secretNames: ['LEASE'], managedValues: [{ name: 'LEASE', value: LEASE }] },
  });

  /** Starts a credential process holding LEASE in its environ inside the container, and waits until it says so. */
  async function aHolder(runId: string): Promise<{ handle: SandboxHandle; exited: Promise<unknown> }> {
    const handle = await remote.create(leasedRequest(runId));
    const streamed: string[] = [];
    const holder = await remote.start(handle, {
      argv: ['sh', '-c', 'echo holding; exec sleep 600'], identity: 'credential',
      credentials: async () => [{ env: { LEASE }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
      onOutput: (_stream, text) => streamed.push(text),
    });
    holder.exited.catch(() => undefined);
    await until(() => streamed.join('').includes('holding'), 'the holder to start', 60_000, agent);
    return { handle, exited: holder.exited };
  }

  it('runs a sandbox in a container of its own: files, a lease delivered to one process and redacted, teardown removes the container', async () => {
    expect(remote.capabilities).toEqual({ isolated: true });
    const handle = await remote.create({ ...leasedRequest('run-docker-agent'), files: { 'hello.txt': 'hello from the template' } });
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

  it('the agent killed mid-run: the command fails clearly; the container holding a lease outlives it until the restarted agent removes it', async () => {
    const { handle, exited } = await aHolder('run-docker-killed');
    expect(await containersOfScope(docker, scope)).toHaveLength(1);
    agent.child.kill('SIGKILL');
    await expect(exited).rejects.toMatchObject({ code: 'HOST.GONE', message: /disconnected/ });
    await remote.teardown(handle);
    // Killed outright, the agent tore nothing down: the container and its leased process are still there (the control).
    expect(await containersOfScope(docker, scope)).toHaveLength(1);
    expect(processesHolding(LEASE).length).toBeGreaterThan(0);

    agent = startAgent();
    await until(() => channel.liveHosts(ws).length === 1, 'the restarted agent', 240_000, agent);
    // It swept its scope as it started: no container, no process holding the value.
    await until(async () => (await containersOfScope(docker, scope)).length === 0, 'the left container to go', 60_000, agent);
    await until(() => processesHolding(LEASE).length === 0, 'no process to hold the lease', 60_000, agent);
    const again = await remote.create(leasedRequest('run-docker-after-restart'));
    expect((await remote.exec(again, { argv: ['echo', 'back'], identity: 'agent' })).stdout).toBe('back\n');
    await remote.teardown(again);
  }, 600_000);

  it('a host revoked mid-run is cut off at once: its command fails with the reason, the agent stops and its container is torn down', async () => {
    // Two sandboxes of the host, each with a process holding a lease, when the cut comes.
    const holders = [await aHolder('run-docker-revoked'), await aHolder('run-docker-revoked-2')];
    expect(await containersOfScope(docker, scope)).toHaveLength(2);
    const revoked = await api.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice });
    expect(revoked.status).toBe(204);
    expect(channel.liveHosts(ws)).toEqual([]);
    for (const { exited } of holders) await expect(exited).rejects.toMatchObject({ code: 'HOST.GONE', message: /revoked by alice/ });
    expect(await agent.exited).toBe(3);
    await until(async () => (await containersOfScope(docker, scope)).length === 0, 'the containers to be torn down', 60_000, agent);
    await until(() => processesHolding(LEASE).length === 0, 'no process to hold the lease', 60_000, agent);
    await expect(remote.create(leasedRequest('run-docker-after-revocation'))).rejects.toMatchObject({ code: 'HOST.NONE_LIVE' });
  }, 300_000);

  it('no value crossed the channel except inside the exec frames of the processes it was leased to', () => {
    const carrying = frames.filter((f) => f.includes(LEASE));
    expect(carrying.length).toBe(4); // the first test's leased exec and the three holders
    for (const raw of carrying) {
      const body = (JSON.parse(raw) as { body: { op?: string; command?: { deliveries: unknown[] } } }).body;
      expect(body.op).toBe('exec');
      expect(JSON.stringify({ ...body, command: { ...body.command, deliveries: [] } })).not.toContain(LEASE);
    }
  });
});
