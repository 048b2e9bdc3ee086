import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ProcessCredentialDelivery, SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { onRun } from '../../../../domain/services/runStream';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { serveSshOverChannel } from '../../../../functions/sshAccess.wiring';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { hostChannelControl } from '../../../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { sshAccessPoint } from '../../../../infra/sandbox/remote/sshRelay';
import { createApiHarness, type ApiHarness } from '../../../support/apiHarness';
import { spawnHostAgent } from '../../../support/remoteHostBackend';
import { type SshOutcome, type SshTicketAnswer, sshThroughProxy } from '../../../support/sshClient';

/**
 * stdin over the host channel with a real agent process: OpenSSH's `ssh` streams its stdin into a command and feeds
 * an interactive shell (with and without a terminal), and the platform's own `stdin` frames are refused for any
 * process but the one they were meant for. Every frame is captured.
 */
const SECRET = 'ssh-stdin-lease-Rt5yU8iO2pA4sD6f';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-ssh-stdin-'));
let h: ApiHarness;
let channel: HostChannelServer;
let remote: RemoteSandboxHost;
let tls: ReturnType<typeof selfSignedCertificate>;
let agent: ReturnType<typeof spawnHostAgent>;
let alice: string;
let ws: string;
const frames: { direction: string; raw: string }[] = [];
const children: ChildProcess[] = [];

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** A run whose sandbox lives on the agent, a credential process having left the lease's value in its workspace. */
async function liveRun(): Promise<{ runId: string; handle: SandboxHandle }> {
  const runId = randomUUID();
  const by = { actor: 'alice', correlationId: runId };
  await onRun(h.deps, ws, runId, { type: 'RequestRun', runId, workspaceId: ws, deadline: new Date(Date.now() + 600_000).toISOString(), specRef: 'spec', specDigest: 'digest' }, by);
  await onRun(h.deps, ws, runId, { type: 'StartPhase', phase: 'seed' }, by);
  const handle = await remote.create({
    runId, files: {}, redactor: createRedactor([{ name: 'API_TOKEN', value: SECRET }]),
    guard: { secretNames: ['API_TOKEN'], managedValues: [{ name: 'API_TOKEN', value: SECRET }] }, placement: { workspaceId: ws },
  });
  await onRun(h.deps, ws, runId, { type: 'RecordSandboxLaunched', sandboxId: handle.sandboxId, isolated: handle.isolated }, by);
  const leaked = await remote.exec(handle, {
    argv: ['sh', '-c', 'echo "$API_TOKEN" > leaked.txt'], identity: 'credential',
    credentials: async (): Promise<readonly ProcessCredentialDelivery[]> => [{ env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
  });
  expect(leaked.exitCode, leaked.stderr).toBe(0);
  return { runId, handle };
}

async function ssh(runId: string, options: { command?: string; input?: string | Buffer; sshOptions?: readonly string[] }): Promise<SshOutcome> {
  const reply = await h.call('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`, { token: alice });
  expect(reply.status, reply.text).toBe(201);
  const session = sshThroughProxy({ ticket: reply.json as SshTicketAnswer, platform: channel.url, caFile: tls.certFile, dir, ...options });
  children.push(session.child);
  return session;
}

beforeAll(async () => {
  h = await createApiHarness();
  alice = await h.issuer.token('alice');
  ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Ssh stdin' } })).json as { id: string }).id;
  tls = selfSignedCertificate(path.join(dir, 'tls'));
  channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(h.deps), tap: (direction, raw) => frames.push({ direction, raw }) });
  hostChannelControl.set(channel);
  remote = new RemoteSandboxHost(channel);
  serveSshOverChannel(h.deps, channel, remote, tls.certFile);
  const enrolment = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'stdin-box' } })).json as { enrolmentToken: string };
  agent = spawnHostAgent({ platform: channel.url, caFile: tls.certFile, token: enrolment.enrolmentToken, state: path.join(dir, 'agent.json') });
  children.push(agent);
  await until(() => channel.liveHosts(ws).length === 1, 'the agent to connect', 90_000);
}, 120_000);

// A failure here is often the agent's channel ending: its log says why.
afterEach(({ task }) => {
  if (task.result?.state === 'fail') console.error(`host agent log (exit ${agent.exitCode ?? agent.signalCode ?? 'none yet'}):\n${agent.output()}`);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  sshAccessPoint.set(undefined);
  hostChannelControl.set(undefined);
  await channel?.close();
});

describe('stdin through IDE SSH', () => {
  it("streams the client's stdin into a command: `wc -c < file` counts it, `cat > f` stores it byte for byte", async () => {
    const { runId, handle } = await liveRun();
    // Larger than ssh2's 2 MiB channel window and the agent's 4 MiB queue together: only flow control gets it through.
    const file = randomBytes(5 * 1024 * 1024 + 123);
    const counted = await ssh(runId, { command: 'wc -c', input: file });
    expect(counted.code, counted.stderr).toBe(0);
    expect(counted.stdout.trim()).toBe(String(file.length));

    const stored = await ssh(runId, { command: 'cat > upload.bin && sha256sum upload.bin', input: file });
    expect(stored.code, stored.stderr).toBe(0);
    expect(stored.stdout.split(' ')[0]).toBe(createHash('sha256').update(file).digest('hex'));
    await remote.teardown(handle);
  }, 120_000);

  it('a shell fed on stdin (no terminal) runs as the agent uid, with no gateway bearer, its output redacted', async () => {
    const { runId, handle } = await liveRun();
    const agentUid = (await remote.exec(handle, { argv: ['id', '-u'], identity: 'agent' })).stdout.trim();
    const shell = await ssh(runId, { sshOptions: ['-T'], input: 'id -u\necho "bearer=${GATEWAY_TOKEN:-none}"\ncat leaked.txt\necho "typed=$(cat leaked.txt)"\nexit 7\n' });
    expect(shell.code, shell.stderr).toBe(7);
    expect(shell.stdout.split('\n')).toEqual([agentUid, 'bearer=none', expect.stringMatching(/^\[REDACTED:[A-Z_]+\]$/), expect.stringMatching(/^typed=\[REDACTED:[A-Z_]+\]$/), '']);
    expect(shell.stdout + shell.stderr).not.toContain(SECRET);
    await remote.teardown(handle);
  }, 120_000);

  it('`ssh -tt` gets a shell on a terminal of its own, sized from the request, output redacted', async () => {
    const { runId, handle } = await liveRun();
    const shell = await ssh(runId, { sshOptions: ['-tt'], input: 'tty; stty size; echo "term=$TERM"; cat leaked.txt; exit\n' });
    expect(shell.code, shell.stderr + shell.stdout).toBe(0);
    // The terminal echoes the input and the shell prompts before its output: each answer ends its line.
    expect(shell.stdout).toMatch(/\/dev\/pts\/\d+\r?$/m);
    expect(shell.stdout).toMatch(/(^|\s)\d+ \d+\r?$/m);
    expect(shell.stdout).toMatch(/term=[A-Za-z0-9._+-]+\r?$/m);
    expect(shell.stdout).toMatch(/\[REDACTED:[A-Z_]+\]\r?$/m);
    expect(shell.stdout).not.toContain(SECRET);
    await remote.teardown(handle);
  }, 120_000);
});

describe('stdin frames on the channel', () => {
  it('are refused for a process of another run, one the platform did not start and one without stdin; only its own input reaches the process', async () => {
    const a = await liveRun();
    const b = await liveRun();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    async function* input(): AsyncGenerator<string> {
      yield 'own-bytes\n';
      await held;
    }
    const reader = await remote.start(a.handle, { argv: ['cat'], identity: 'agent', stdin: input() });
    const exec = frames.map((f) => JSON.parse(f.raw) as { body: { op?: string; runId?: string; execId?: string; command?: { stdin?: boolean } } })
      .find((f) => f.body.op === 'exec' && f.body.runId === a.runId && f.body.command?.stdin === true);
    const execId = exec?.body.execId ?? '';
    expect(execId).not.toBe('');
    await until(() => frames.some((f) => f.raw.includes('"op":"stdin"') && f.raw.includes(execId)), 'the own stdin frame');
    const silent = await remote.start(a.handle, { argv: ['sleep', '60'], identity: 'agent' });
    const silentId = (frames.map((f) => JSON.parse(f.raw) as { body: { op?: string; runId?: string; execId?: string } }).filter((f) => f.body.op === 'exec' && f.body.runId === a.runId).at(-1)?.body.execId) ?? '';

    const connection = channel.liveHosts(ws)[0]!;
    const forged = (runId: string, id: string, offset = 10) =>
      rejection(connection.request({ op: 'stdin', requestId: randomUUID(), runId, execId: id, offset, data: Buffer.from(`forged by ${runId}\n`).toString('base64') }));
    expect(await forged(b.runId, execId)).toMatchObject({ code: 'HOST.FOREIGN_RUN' });
    expect(await forged(a.runId, randomUUID())).toMatchObject({ code: 'HOST.NO_SUCH_PROCESS' });
    expect(await forged(a.runId, silentId)).toMatchObject({ code: 'HOST.NO_STDIN' });
    // The right process, but bytes that do not follow on from what it was sent: refused, never spliced in.
    expect(await forged(a.runId, execId, 0)).toMatchObject({ code: 'HOST.STDIN_OUT_OF_ORDER' });
    await until(() => (agent.output().match(/refused a stdin frame/g) ?? []).length >= 4, 'the agent to record the refusals');
    expect(agent.output()).toMatch(new RegExp(`refused a stdin frame for run ${b.runId} \\(HOST\\.FOREIGN_RUN\\)`));

    release();
    const result = await reader.exited;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe('own-bytes\n');
    await silent.stop();
    await remote.teardown(a.handle);
    await remote.teardown(b.handle);
  }, 120_000);
});
