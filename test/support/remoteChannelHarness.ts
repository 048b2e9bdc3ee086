import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { hostChannelAuthority } from '../../functions/hostChannelAuthority';
import { HostChannelServer } from '../../infra/sandbox/remote/hostChannelServer';
import { hostChannelControl } from '../../infra/sandbox/remote/randomHostCredentials';
import { selfSignedCertificate } from '../../localhost/selfSignedCertificate';
import { type ApiHarness, createApiHarness } from './apiHarness';
import { spawnHostAgent } from './remoteHostBackend';

/**
 * The platform side of the host channel in-process (API harness, TLS, the local channel) and real host agent
 * processes enrolled through the API: what the in-process remote-host tests share (`remoteHostBackend.ts` has the pieces for a backend run as a process).
 */
export interface RemoteChannelHarness {
  readonly h: ApiHarness;
  readonly channel: HostChannelServer;
  readonly dir: string;
  /** Every frame the channel carried, as sent. */
  readonly frames: { direction: string; raw: string }[];
  readonly owner: string;
  createWorkspace(name: string): Promise<string>;
  /** Enrols a host in the workspace and starts its agent (`extraArgs` after the usual ones); resolves once it is live. */
  enrolAgent(workspaceId: string, name: string, extraArgs?: readonly string[]): Promise<{ hostId: string; agent: ChildProcess }>;
  close(): Promise<void>;
}

export async function startRemoteChannelHarness(): Promise<RemoteChannelHarness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-remote-test-'));
  const h = await createApiHarness();
  const owner = await h.issuer.token('alice');
  const tls = selfSignedCertificate(path.join(dir, 'tls'));
  const frames: { direction: string; raw: string }[] = [];
  const channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(h.deps), tap: (direction, raw) => frames.push({ direction, raw }) });
  hostChannelControl.set(channel);
  const agents: ChildProcess[] = [];
  return {
    h, channel, dir, frames, owner,
    async createWorkspace(name) {
      const created = await h.call('POST', '/api/workspaces', { token: owner, body: { name } });
      expect(created.status, created.text).toBe(201);
      return (created.json as { id: string }).id;
    },
    async enrolAgent(workspaceId, name, extraArgs = []) {
      const answer = await h.call('POST', `/api/workspaces/${workspaceId}/hosts`, { token: owner, body: { name } });
      expect(answer.status, answer.text).toBe(201);
      const { enrolmentToken, hostId } = answer.json as { enrolmentToken: string; hostId: string };
      const agent = spawnHostAgent({ platform: channel.url, caFile: tls.certFile, token: enrolmentToken, state: path.join(dir, `${name}.json`), args: ['--isolation', 'off', ...extraArgs] });
      agents.push(agent);
      await until(() => channel.liveHosts(workspaceId).some((c) => c.hostId === hostId), `the agent of ${name} to connect`, 90_000);
      return { hostId, agent };
    },
    async close() {
      for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
      hostChannelControl.set(undefined);
      await channel.close();
    },
  };
}

/** Polls until `check` holds, failing after `ms` with what was awaited. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
