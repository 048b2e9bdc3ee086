import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalHostProcess } from '../support/localHostProcess';
import { enrolAndConnect, remoteHostSettings, spawnHostAgent } from '../support/remoteHostBackend';
import { type SshTicketAnswer, sshThroughProxy } from '../support/sshClient';
import { apiClient, backendEnv, type Call, startBackend, tokenFor, waitForRun } from './runHarness';

/**
 * Who may enter a run's sandbox. An SSH session runs as the run's agent uid, so while a turn runs it can read that
 * turn's environment from /proc: its model key and gateway bearer. The requester wrote the turn and may lease
 * that key to it; another member of the workspace, whom the key's `model` use does not include, must not get it
 * through SSH. The attack: bob, a member, asks for a ticket into alice's run and reads the turn's environment.
 */
const MODEL_KEY = 'sk-requester-only-model-key-7e7e7e7e7e';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-ssh-requester-e2e-'));
const env = backendEnv();
let host: LocalHostProcess;
let alice: Call;
let bob: Call;
let agent: ChildProcess | undefined;
let remote: Awaited<ReturnType<typeof remoteHostSettings>>;
const children: ChildProcess[] = [];

function ssh(ticket: SshTicketAnswer, command: string): ReturnType<typeof sshThroughProxy> {
  const session = sshThroughProxy({ ticket, command, platform: remote.platform, caFile: remote.caFile, dir });
  children.push(session.child);
  return session;
}

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

describe('IDE SSH: only the run’s requester enters its sandbox', () => {
  it('another member is refused a ticket (403, recorded); the requester’s session shows what that refusal keeps from him', async () => {
    const ws = ((await alice('POST', '/api/workspaces', { name: 'SshRequester' })).json as { id: string }).id;
    expect((await alice('PUT', `/api/workspaces/${ws}/members/bob`, { role: 'member' })).status).toBe(200);
    // The model key is alice's alone: bob may not lease it to a turn of his.
    expect((await alice('PUT', `/api/workspaces/${ws}/secrets/MODEL_KEY`, { value: MODEL_KEY, uses: { model: ['alice'] } })).status).toBe(201);
    ({ agent } = await enrolAndConnect(alice, ws, (token) => spawnHostAgent({ platform: remote.platform, caFile: remote.caFile, token, state: path.join(dir, 'agent.json') })));

    const { runId } = (await alice('POST', `/api/workspaces/${ws}/runs`, {
      template: { files: {} },
      turns: [{ command: ['sh', '-c', 'echo $$ > turn.pid; sleep 300'], modelKey: 'MODEL_KEY' }],
      deadlineSeconds: 600,
    })).json as { runId: string };
    await waitForRun(alice, ws, runId, (run) => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running'));

    // The attack: bob is a member, so before this rule he got a ticket like anyone else.
    const refused = await bob('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
    expect(refused.status, refused.text).toBe(403);
    expect(refused.json).toMatchObject({ code: 'SSH.NOT_REQUESTER' });
    expect(refused.text).not.toMatch(/dps_/);
    const audit = (await alice('GET', `/api/workspaces/${ws}/audit?limit=500`)).json as { records: { type: string; meta: { actor: string }; data: { action?: string } }[] };
    expect(audit.records.some((r) => r.type === 'AccessDenied' && r.meta.actor === 'bob' && r.data.action === 'runs.ssh')).toBe(true);
    expect(audit.records.some((r) => r.type === 'SshTicketIssued' && r.meta.actor === 'bob')).toBe(false);

    // What the ticket would have given him: the requester's session reads the running turn's key (reversed, so the
    // sandbox's redactor does not mask it: transformed output is exactly what redaction cannot stop).
    let session: { code: number | null; stdout: string; stderr: string } | undefined;
    for (let attempt = 0; attempt < 20; attempt++) {
      const ticket = await alice('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
      expect(ticket.status, ticket.text).toBe(201);
      session = await ssh(ticket.json as SshTicketAnswer, "tr '\\0' '\\n' < /proc/$(cat turn.pid)/environ | sed -n 's/^OPENAI_API_KEY=//p;s/^MODEL_KEY=//p' | rev");
      if (session.code === 0 && session.stdout.trim() !== '') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(session?.code, session?.stderr).toBe(0);
    expect(session?.stdout.trim().split('').reverse().join('')).toBe(MODEL_KEY);
    expect((await alice('POST', `/api/workspaces/${ws}/runs/${runId}/cancel`)).status).toBe(202);
  }, 300_000);

  it('a requester removed from the workspace after her ticket was issued opens nothing with it', async () => {
    const ws = ((await alice('POST', '/api/workspaces', { name: 'SshRemoved' })).json as { id: string }).id;
    expect((await alice('PUT', `/api/workspaces/${ws}/members/bob`, { role: 'member' })).status).toBe(200);
    ({ agent } = await enrolAndConnect(alice, ws, (token) => spawnHostAgent({ platform: remote.platform, caFile: remote.caFile, token, state: path.join(dir, 'agent-2.json') }), 'removed-box'));
    const { runId } = (await bob('POST', `/api/workspaces/${ws}/runs`, { template: { files: {} }, turns: [{ command: ['sleep', '300'] }], deadlineSeconds: 600 })).json as { runId: string };
    await waitForRun(alice, ws, runId, (run) => run.phases.some((p) => p.phase === 'turn' && p.status === 'Running'));
    const ticket = await bob('POST', `/api/workspaces/${ws}/runs/${runId}/ssh`);
    expect(ticket.status, ticket.text).toBe(201);
    expect((await alice('DELETE', `/api/workspaces/${ws}/members/bob`)).status).toBe(204);
    const session = await ssh(ticket.json as SshTicketAnswer, 'echo inside');
    expect(session.code).not.toBe(0);
    expect(session.stdout).not.toContain('inside');
    const run = await alice('GET', `/api/workspaces/${ws}/runs/${runId}`);
    expect((run.json as { events: { type: string }[] }).events.some((e) => e.type === 'SshSessionOpened')).toBe(false);
    expect((await alice('POST', `/api/workspaces/${ws}/runs/${runId}/cancel`)).status).toBe(202);
  }, 300_000);
});
