import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import { onRun } from '../../../../domain/services/runStream';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { serveSshOverChannel } from '../../../../functions/sshAccess.wiring';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { sshAccessPoint } from '../../../../infra/sandbox/remote/sshRelay';
import { createApiHarness } from '../../../support/apiHarness';
import { describeWithDocker, dockerForTests, removeScope, sandboxImageForTests, testScope } from '../../../support/dockerEngine';
import { spawnHostAgent } from '../../../support/remoteHostBackend';
import { type SshTicketAnswer, sshThroughProxy } from '../../../support/sshClient';

/** IDE SSH into a container: a host agent with `--inner docker` serves the session, the command runs in the container as the agent. */
const engine = dockerForTests();
const scope = testScope(__filename);
const LEASE = 'ssh-docker-lease-Vb8nM2qW5eR7tY1u';

describeWithDocker('IDE SSH through a host agent with the Docker host inside', engine, ({ docker, socketPath }) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-ssh-docker-'));
  let channel: HostChannelServer;
  let agent: ReturnType<typeof spawnHostAgent>;

  afterAll(async () => {
    if (agent?.exitCode === null) {
      const exited = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
    sshAccessPoint.set(undefined);
    await channel?.close();
    await removeScope(docker, scope);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  let api: Awaited<ReturnType<typeof createApiHarness>>;
  let remote: RemoteSandboxHost;
  let tls: ReturnType<typeof selfSignedCertificate>;
  let alice: string;
  let ws: string;

  beforeAll(async () => {
    const image = await sandboxImageForTests(docker);
    api = await createApiHarness();
    alice = await api.issuer.token('alice');
    ws = ((await api.call('POST', '/api/workspaces', { token: alice, body: { name: 'Ssh docker' } })).json as { id: string }).id;
    tls = selfSignedCertificate(path.join(dir, 'tls'));
    channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(api.deps) });
    remote = new RemoteSandboxHost(channel);
    serveSshOverChannel(api.deps, channel, remote, tls.certFile);
    const { enrolmentToken } = (await api.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'docker-ssh' } })).json as { enrolmentToken: string };
    agent = spawnHostAgent({
      platform: channel.url, caFile: tls.certFile, token: enrolmentToken, state: path.join(dir, 'agent.json'),
      args: ['--inner', 'docker', '--image', image, '--scope', scope], env: { DOCKER_HOST: `unix://${socketPath}` },
    });
    const end = Date.now() + 120_000;
    while (channel.liveHosts(ws).length === 0) {
      if (Date.now() > end || agent.exitCode !== null) throw new Error(`the agent never connected: ${agent.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 600_000);

  it('runs the command in the container as the agent uid, with its output redacted on the agent', async () => {
    const runId = randomUUID();
    const by = { actor: 'alice', correlationId: runId };
    await onRun(api.deps, ws, runId, { type: 'RequestRun', runId, workspaceId: ws, deadline: new Date(Date.now() + 600_000).toISOString(), specRef: 's', specDigest: 'd' }, by);
    await onRun(api.deps, ws, runId, { type: 'StartPhase', phase: 'seed' }, by);
    const handle = await remote.create({
      runId, files: { 'hello.txt': 'hello from the container' }, placement: { workspaceId: ws },
      redactor: createRedactor([{ name: 'LEASE', value: LEASE }]), guard: { secretNames: ['LEASE'], managedValues: [{ name: 'LEASE', value: LEASE }] },
    });
    await onRun(api.deps, ws, runId, { type: 'RecordSandboxLaunched', sandboxId: handle.sandboxId, isolated: handle.isolated }, by);
    const leaked = await remote.exec(handle, {
      argv: ['sh', '-c', 'echo "$LEASE" > leaked.txt; chmod 644 leaked.txt'], identity: 'credential',
      credentials: async () => [{ env: { LEASE }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
    });
    expect(leaked.exitCode, leaked.stderr).toBe(0);
    const agentUid = (await remote.exec(handle, { argv: ['id', '-u'], identity: 'agent' })).stdout.trim();

    const reply = await api.call('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`, { token: alice });
    expect(reply.status, reply.text).toBe(201);
    const session = await sshThroughProxy({ ticket: reply.json as SshTicketAnswer, command: 'id -u; cat hello.txt; echo; cat leaked.txt', platform: channel.url, caFile: tls.certFile, dir });
    expect(session.code, session.stderr).toBe(0);
    const [uid, hello, lease] = session.stdout.split('\n');
    expect(uid).toBe(agentUid);
    expect(uid).not.toBe('0');
    expect(hello).toBe('hello from the container');
    expect(lease).toMatch(/^\[REDACTED:[A-Z_]+\]$/);
    expect(session.stdout).not.toContain(LEASE);
    await remote.teardown(handle);
  }, 300_000);

  it("streams the client's stdin into the container, and `ssh -tt` gets a shell on the container's own terminal as the agent", async () => {
    const runId = randomUUID();
    const by = { actor: 'alice', correlationId: runId };
    await onRun(api.deps, ws, runId, { type: 'RequestRun', runId, workspaceId: ws, deadline: new Date(Date.now() + 600_000).toISOString(), specRef: 's', specDigest: 'd' }, by);
    await onRun(api.deps, ws, runId, { type: 'StartPhase', phase: 'seed' }, by);
    const handle = await remote.create({
      runId, files: {}, placement: { workspaceId: ws },
      redactor: createRedactor([{ name: 'LEASE', value: LEASE }]), guard: { secretNames: ['LEASE'], managedValues: [{ name: 'LEASE', value: LEASE }] },
    });
    await onRun(api.deps, ws, runId, { type: 'RecordSandboxLaunched', sandboxId: handle.sandboxId, isolated: handle.isolated }, by);
    // The agent's redactor knows what was delivered into this sandbox: a credential process held the lease.
    const held = await remote.exec(handle, { argv: ['true'], identity: 'credential', credentials: async () => [{ env: { LEASE }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }] });
    expect(held.exitCode, held.stderr).toBe(0);
    const agentUid = (await remote.exec(handle, { argv: ['id', '-u'], identity: 'agent' })).stdout.trim();
    const ssh = async (options: { command?: string; input: string | Buffer; sshOptions?: readonly string[] }): Promise<{ code: number | null; stdout: string; stderr: string }> => {
      const reply = await api.call('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`, { token: alice });
      expect(reply.status, reply.text).toBe(201);
      return sshThroughProxy({ ticket: reply.json as SshTicketAnswer, platform: channel.url, caFile: tls.certFile, dir, ...options });
    };
    const file = Buffer.alloc(3 * 1024 * 1024 + 7, 'x');
    const counted = await ssh({ command: 'wc -c', input: file });
    expect(counted.code, `${counted.stderr}\n${agent.output().slice(-3000)}`).toBe(0);
    expect(counted.stdout.trim()).toBe(String(file.length));

    const shell = await ssh({ sshOptions: ['-tt'], input: `readlink /proc/self/fd/0; id -u; echo "bearer=\${GATEWAY_TOKEN:-none}"; echo ${Buffer.from(LEASE).toString('base64')} | base64 -d; echo; exit\n` });
    expect(shell.code, shell.stderr + shell.stdout).toBe(0);
    expect(shell.stdout).toMatch(/\/dev\/pts\/\d+\r?$/m);
    expect(shell.stdout).toMatch(new RegExp(`(^|\\s)${agentUid}\\r?$`, 'm'));
    expect(shell.stdout).toMatch(/bearer=none\r?$/m);
    expect(shell.stdout).toMatch(/\[REDACTED:[A-Z_]+\]\r?$/m);
    expect(shell.stdout).not.toContain(LEASE);
    await remote.teardown(handle);
  }, 300_000);
});
