import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHostProcess } from '../support/localHostProcess';
import { enrolAndConnect, remoteHostSettings, spawnHostAgent } from '../support/remoteHostBackend';
import { type SshTicketAnswer, sshThroughProxy } from '../support/sshClient';
import { apiClient, backendEnv, type Call, type RunView, isFinished, startBackend, tokenFor, waitForRun } from './runHarness';

/**
 * IDE SSH over the host channel (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel), end to end: the real local
 * host with SANDBOX_HOST=remote, a real host agent, a real run, and OpenSSH's own `ssh` with our ProxyCommand.
 */
const ENV_KEY = 'ssh-e2e-secret-value-5c5c5c5c5c';
const STANDING = 'standing-visible-to-ssh';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-ssh-e2e-'));
const env = backendEnv();
let host: LocalHostProcess;
let alice: Call;
let bob: Call;
let agent: ChildProcess | undefined;
let remote: Awaited<ReturnType<typeof remoteHostSettings>>;
const children: ChildProcess[] = [];

type Ticket = SshTicketAnswer;

function ssh(ticket: Ticket, command: string): ReturnType<typeof sshThroughProxy> {
  const session = sshThroughProxy({ ticket, command, platform: remote.platform, caFile: remote.caFile, dir });
  children.push(session.child);
  return session;
}

async function ticketFor(ws: string, runId: string): Promise<Ticket> {
  const reply = await alice('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
  expect(reply.status, reply.text).toBe(201);
  return reply.json as Ticket;
}

const eventsOf = (run: RunView, type: string) => run.events.filter((e) => e.type === type);

beforeAll(async () => {
  remote = await remoteHostSettings(dir);
  Object.assign(env, remote.env);
  host = await startBackend(env);
  alice = apiClient(() => host.url, await tokenFor('alice', env));
  bob = apiClient(() => host.url, await tokenFor('bob', env));
}, 120_000);

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  if (agent?.exitCode === null) agent.kill('SIGTERM');
  await host?.stop();
});

describe('IDE SSH into a live run through the host channel', () => {
  it('OpenSSH through ssh-proxy runs a command in the sandbox as the agent; tickets are single-use, member-only, recorded; teardown ends the session', async () => {
    const ws = ((await alice('POST', '/api/workspaces', { name: 'Ssh' })).json as { id: string }).id;
    expect((await alice('PUT', `/api/workspaces/${ws}/secrets/ENV_KEY`, { value: ENV_KEY, uses: { command: 'members' } })).status).toBe(201);
    ({ agent } = await enrolAndConnect(alice, ws, (token) => spawnHostAgent({ platform: remote.platform, caFile: remote.caFile, token, state: path.join(dir, 'agent.json') })));

    const { runId } = (await alice('POST', `/api/workspaces/${ws}/runs`, {
      template: { files: { 'README.md': 'a sandbox to look into' } },
      env: { STANDING },
      // A credential process leaves its value in the workspace, as a careless one might: SSH output must not show it.
      install: [{ command: ['sh', '-c', 'echo "$ENV_KEY" > delivered.txt'], secrets: [{ ref: 'ENV_KEY', use: 'env', as: 'ENV_KEY' }] }],
      turns: [{ command: ['sh', '-c', 'id -u > agent-uid.txt; env > agent-env.txt; sleep 300'] }],
      deadlineSeconds: 600,
    })).json as { runId: string };

    // Before the sandbox exists there is nothing to enter.
    const early = await alice('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
    if (early.status !== 201) expect(early.json).toMatchObject({ code: 'SSH.RUN_NOT_LIVE' });
    await waitForRun(alice, ws, runId, (run) => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running'));

    // Not a member (bob has his own workspace): 404, the run's existence not disclosed.
    ((await bob('POST', '/api/workspaces', { name: 'Bob' })).json as { id: string }).id;
    const foreign = await bob('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
    expect(foreign.status).toBe(404);
    expect(foreign.text).not.toMatch(/dps_/);

    // The turn writes its uid shortly after it starts: ask until it is there (each try is a new ticket).
    let session: { code: number | null; stdout: string; stderr: string } | undefined;
    let first: Ticket | undefined;
    let openMs = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      first = await ticketFor(ws, runId);
      expect(first.knownHosts).toMatch(new RegExp(`^${first.host} ssh-ed25519 [A-Za-z0-9+/]+=*$`));
      expect(Date.parse(first.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000);
      const started = Date.now();
      session = await ssh(first, 'id -u; cat agent-uid.txt; cat delivered.txt; grep -c ^GATEWAY_TOKEN= agent-env.txt; env');
      openMs = Date.now() - started;
      if (session.code === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(session?.code, session?.stderr).toBe(0);
    console.log(`SSH e2e: ssh through ssh-proxy, session opened, command run and closed in ${openMs} ms`);
    const [uid, turnUid, delivered, turnHasBearer, ...environment] = (session?.stdout ?? '').split('\n');
    expect(turnHasBearer).toBe('1'); // the run's agent holds its gateway bearer; the SSH session does not
    expect(uid).toMatch(/^\d+$/);
    expect(uid).toBe(turnUid); // the uid the run's own turn has: the sandbox as the agent sees it
    expect(delivered).toMatch(/\[REDACTED:[A-Z_]+\]/); // the agent's redactor ran before ssh2 encrypted it
    expect(session?.stdout).not.toContain(ENV_KEY);
    expect(environment).toContain(`STANDING=${STANDING}`);
    expect(environment.some((line) => /^GATEWAY_(TOKEN|URL)=/.test(line))).toBe(false);

    // An interactive shell fed on stdin: the same identity and env, a file streamed in through its stdin.
    const shell = await sshThroughProxy({
      ticket: await ticketFor(ws, runId), platform: remote.platform, caFile: remote.caFile, dir, sshOptions: ['-T'],
      input: 'id -u\necho "bearer=${GATEWAY_TOKEN:-none}"\ncat delivered.txt\nexit\n',
    });
    expect(shell.code, shell.stderr).toBe(0);
    expect(shell.stdout.split('\n')).toEqual([turnUid, 'bearer=none', expect.stringMatching(/\[REDACTED:[A-Z_]+\]/), '']);
    expect(shell.stdout).not.toContain(ENV_KEY);

    // The same ticket again: refused, and the refusal is on the run.
    const reused = await ssh(first!, 'true');
    expect(reused.code).not.toBe(0);
    expect(reused.stderr).toMatch(/SSH\.TICKET_USED/);
    // A ticket moved to another run (same random part) matches nothing.
    const moved = { ...first!, ticket: first!.ticket.replace(runId, '00000000-0000-4000-8000-000000000000') };
    expect((await ssh(moved, 'true')).stderr).toMatch(/SSH\.TICKET_INVALID/);

    // A session open at teardown ends with it.
    const long = ssh(await ticketFor(ws, runId), 'echo open; sleep 200');
    await waitForRun(alice, ws, runId, (run) => eventsOf(run, 'SshSessionOpened').length === 3);
    expect((await alice('POST', `/api/workspaces/${ws}/runs/${runId}/cancel`)).status).toBe(202);
    const ended = await long;
    expect(ended.stdout).toContain('open');
    const run = await waitForRun(alice, ws, runId, (r) => isFinished(r) && eventsOf(r, 'SshSessionClosed').length === 3);
    expect(eventsOf(run, 'SshSessionClosed').map((e) => e.data.reason)).toContain('the sandbox was torn down');
    const afterTeardown = await alice('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
    expect(afterTeardown.status).toBe(409);
    expect(afterTeardown.json).toMatchObject({ code: 'SSH.RUN_NOT_LIVE' });

    // Recorded on the run, by whom, never the ticket itself.
    const issued = eventsOf(run, 'SshTicketIssued');
    expect(issued.length).toBeGreaterThanOrEqual(2);
    expect(run.events.filter((e) => e.type.startsWith('Ssh')).every((e) => (e as { actor?: string }).actor === 'alice' || e.type === 'SshSessionRefused')).toBe(true);
    expect(eventsOf(run, 'SshSessionRefused').map((e) => e.data.reason)).toContain('reused');
    expect(JSON.stringify(run)).not.toContain(first!.ticket);
    expect(JSON.stringify(run)).not.toContain(first!.ticket.split('.').at(-1));
  }, 300_000);
});
