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
  readonly tls: ReturnType<typeof selfSignedCertificate>;
  createWorkspace(name: string): Promise<string>;
  /** An owner's enrolment of a host in the workspace: its id and one-time token. */
  enrol(workspaceId: string, name: string): Promise<{ hostId: string; enrolmentToken: string }>;
  /** A host agent process for this channel (killed at `close`); isolation off unless `args` say otherwise. */
  startAgent(options: { token?: string; state: string; args?: readonly string[] }): ChildProcess & { output(): string };
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
  const harness: RemoteChannelHarness = {
    h, channel, dir, frames, owner, tls,
    async createWorkspace(name) {
      const created = await h.call('POST', '/api/workspaces', { token: owner, body: { name } });
      expect(created.status, created.text).toBe(201);
      return (created.json as { id: string }).id;
    },
    async enrol(workspaceId, name) {
      const answer = await h.call('POST', `/api/workspaces/${workspaceId}/hosts`, { token: owner, body: { name } });
      expect(answer.status, answer.text).toBe(201);
      return answer.json as { hostId: string; enrolmentToken: string };
    },
    startAgent(options) {
      const agent = spawnHostAgent({ platform: channel.url, caFile: tls.certFile, ...(options.token ? { token: options.token } : {}), state: options.state, args: options.args ?? ['--isolation', 'off'] });
      agents.push(agent);
      return agent;
    },
    async enrolAgent(workspaceId, name, extraArgs = []) {
      const { hostId, enrolmentToken } = await harness.enrol(workspaceId, name);
      const agent = harness.startAgent({ token: enrolmentToken, state: path.join(dir, `${name}.json`), args: ['--isolation', 'off', ...extraArgs] });
      await until(() => channel.liveHosts(workspaceId).some((c) => c.hostId === hostId), `the agent of ${name} to connect`, 90_000);
      return { hostId, agent };
    },
    async close() {
      for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
      hostChannelControl.set(undefined);
      await channel.close();
    },
  };
  return harness;
}

/** Polls until `check` holds, failing after `ms` with what was awaited. */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
