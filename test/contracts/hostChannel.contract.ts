import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../domain/redaction';
import type { ProcessCredentialDelivery, SandboxRequest } from '../../domain/ports/sandboxHost';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { readSandboxHost } from '../../domain/services/sandboxHosts';
import { sandboxHostStreamId } from '../../domain/streams';
import { hostChannelAuthority } from '../../functions/hostChannelAuthority';
import type { HostDirectory } from '../../infra/sandbox/remote/hostChannelServer';
import { type HostChannelControl, hostChannelControl } from '../../infra/sandbox/remote/randomHostCredentials';
import { RemoteSandboxHost } from '../../infra/sandbox/remote/remoteSandboxHost';
import { type ApiHarness, createApiHarness } from '../support/apiHarness';

const projectRoot = path.resolve(__dirname, '../..');
const SECRET = 'lease-value-Wk4pR8sT1vY6nB3m';
const FILE_SECRET = 'file-lease-Hj2kL9qZ5xC7vN0b';

/** A raw client on the channel, as a malicious agent holding a genuine credential would be. */
export interface RawChannelClient {
  /** The session the platform opened (its first frame). */
  readonly session: string;
  send(raw: string): void;
  close(): void;
}

/** One transport of the host channel, opened over a harness's dependencies. */
export interface HostChannelUnderTest {
  readonly directory: HostDirectory & HostChannelControl;
  /** Arguments that point an agent at this channel (platform URL, CA, channel kind). */
  readonly agentArgs: readonly string[];
  /** Every frame of the sandbox protocol either way, as the channel carried it. */
  readonly frames: () => readonly { direction: 'to-host' | 'from-host'; raw: string }[];
  openRaw(credential: string): Promise<RawChannelClient>;
  close(): Promise<void>;
}

/**
 * The behaviours every host channel gives a `RemoteSandboxHost`, whatever carries the frames (the local wss://
 * server, or Web PubSub): a real agent process runs commands with their deliveries, forged and replayed frames
 * are refused and recorded, and a revoked host is cut off mid-run.
 */
export function hostChannelContract(name: string, open: (deps: ServiceDependencies, dir: string) => Promise<HostChannelUnderTest>): void {
  describe(`host channel contract: ${name}`, () => {
    let h: ApiHarness;
    let channel: HostChannelUnderTest;
    let remote: RemoteSandboxHost;
    let alice: string;
    let ws: string;
    let otherWs: string;
    let hostId: string;
    const agents: ChildProcess[] = [];
    const dir = mkdtempSync(path.join(tmpdir(), 'dp-channel-contract-'));
    const state = path.join(dir, 'agent.json');

    const until = async (check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> => {
      const end = Date.now() + ms;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const workspace = async (label: string): Promise<string> => ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: label } })).json as { id: string }).id;
    const enrol = async (workspaceId: string, label: string): Promise<{ hostId: string; enrolmentToken: string }> => {
      const answer = await h.call('POST', `/api/workspaces/${workspaceId}/hosts`, { token: alice, body: { name: label } });
      expect(answer.status).toBe(201);
      return answer.json as { hostId: string; enrolmentToken: string };
    };
    const request = (workspaceId: string, runId: string): SandboxRequest => ({
      runId, files: { 'hello.txt': 'hello from the template' },
      redactor: createRedactor([{ name: 'API_TOKEN', value: SECRET }, { name: 'FILE_TOKEN', value: FILE_SECRET }]),
      guard: { secretNames: ['API_TOKEN', 'FILE_TOKEN'], managedValues: [{ name: 'API_TOKEN', value: SECRET }, { name: 'FILE_TOKEN', value: FILE_SECRET }] },
      placement: { workspaceId },
    });
    const refusalsOf = async (workspaceId: string, host: string): Promise<string[]> =>
      (await h.store.readStream(workspaceId, sandboxHostStreamId(workspaceId, host))).events.filter((e) => e.type === 'HostMessageRefused').map((e) => (e.data as { reason: string }).reason);

    beforeAll(async () => {
      h = await createApiHarness();
      alice = await h.issuer.token('alice');
      ws = await workspace('Acme');
      otherWs = await workspace('Other');
      channel = await open(h.deps, dir);
      hostChannelControl.set(channel.directory);
      remote = new RemoteSandboxHost(channel.directory);
    }, 60_000);

    afterAll(async () => {
      for (const agent of agents) if (agent.exitCode === null) agent.kill('SIGKILL');
      hostChannelControl.set(undefined);
      await channel?.close();
    });

    it('an enrolled agent runs commands; each delivery reaches its one process and no value crosses the channel outside it', async () => {
      const enrolment = await enrol(ws, 'build-box');
      hostId = enrolment.hostId;
      const agent = spawn(process.execPath, [path.join(projectRoot, 'scripts', 'hostAgent.js'), ...channel.agentArgs, '--state', state, '--isolation', 'off', '--token', enrolment.enrolmentToken], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      agent.stdout.on('data', (d) => (output += String(d)));
      agent.stderr.on('data', (d) => (output += String(d)));
      agents.push(agent);
      await until(() => channel.directory.liveHosts(ws).length === 1, `the agent to connect (agent said: ${output})`, 90_000);

      const handle = await remote.create(request(ws, 'run-1'));
      expect(await remote.exec(handle, { argv: ['cat', 'hello.txt'], identity: 'agent' })).toMatchObject({ exitCode: 0, stdout: 'hello from the template' });
      // stdin crosses the channel as `stdin` frames (three of them here), each answered once the process took it.
      const input = (async function* () { yield Buffer.alloc(40_000, 'a'); yield 'tail'; })();
      expect(await remote.exec(handle, { argv: ['wc', '-c'], identity: 'agent', stdin: input })).toMatchObject({ exitCode: 0, stdout: '40004\n' });
      const leased = await remote.exec(handle, {
        argv: ['sh', '-c', 'echo "$API_TOKEN"; cat "$TOKEN_FILE"'], identity: 'credential',
        credentials: async (target): Promise<readonly ProcessCredentialDelivery[]> => {
          const file = path.join(target.credentialDir, 'token');
          writeFileSync(file, FILE_SECRET, { mode: 0o600 });
          return [
            { env: { API_TOKEN: SECRET }, argsAfterCommand: [], paths: [], cleanup: async () => undefined },
            { env: { TOKEN_FILE: file }, argsAfterCommand: [], paths: [file], cleanup: async () => undefined },
          ];
        },
      });
      expect(leased.exitCode).toBe(0);
      expect(leased.stdout).toMatch(/\[REDACTED:[A-Z_]+\]\n\[REDACTED:[A-Z_]+\]/);
      expect((await remote.exec(handle, { argv: ['sh', '-c', 'echo "${API_TOKEN:-none}"'], identity: 'agent' })).stdout.trim()).toBe('none');
      await remote.teardown(handle);

      const carrying = channel.frames().filter((f) => f.raw.includes(SECRET) || f.raw.includes(FILE_SECRET) || f.raw.includes(Buffer.from(FILE_SECRET).toString('base64')));
      expect(carrying.length).toBeGreaterThan(0);
      for (const frame of carrying) {
        expect(frame.direction).toBe('to-host');
        const body = (JSON.parse(frame.raw) as { body: { op?: string; command?: object } }).body;
        expect(body.op).toBe('exec');
        const withoutDeliveries = JSON.stringify({ ...body, command: { ...body.command, deliveries: [] } });
        expect(withoutDeliveries).not.toContain(SECRET);
        expect(withoutDeliveries).not.toContain(FILE_SECRET);
      }
    }, 150_000);

    it('replayed, out-of-order, foreign-host, cross-workspace, foreign-session, foreign-run and malformed frames are refused and recorded', async () => {
      const mallory = await enrol(otherWs, 'mallory-box');
      const { credential } = await hostChannelAuthority(h.deps).enrol(mallory.enrolmentToken);
      const raw = await channel.openRaw(credential);
      const frame = (seq: number, body: unknown, over: Record<string, unknown> = {}): string =>
        JSON.stringify({ v: 1, hostId: mallory.hostId, workspaceId: otherWs, session: raw.session, seq, body, ...over });
      const ready = frame(1, { kind: 'ready', capabilities: { isolated: true } });
      raw.send(ready);
      await until(() => channel.directory.liveHosts(otherWs).length === 1, 'mallory ready');
      raw.send(ready);
      raw.send(frame(5, { kind: 'heartbeat' }));
      raw.send(frame(2, { kind: 'heartbeat' }, { hostId }));
      raw.send(frame(2, { kind: 'heartbeat' }, { workspaceId: ws }));
      raw.send(frame(2, { kind: 'heartbeat' }, { session: 'guessed' }));
      raw.send(frame(2, { kind: 'exited', runId: 'run-1', execId: 'e1', result: { exitCode: 0, signal: null, stdout: 'forged', stderr: '', truncated: false, timedOut: false, cancelled: false } }));
      raw.send('{not json');
      await until(async () => (await refusalsOf(otherWs, mallory.hostId)).length >= 7, 'the refusals to be recorded');
      expect((await refusalsOf(otherWs, mallory.hostId)).sort()).toEqual(['foreign-host', 'foreign-run', 'foreign-session', 'foreign-workspace', 'malformed', 'out-of-order', 'replayed']);
      expect(await refusalsOf(ws, hostId)).toEqual([]);
      raw.close();
    }, 60_000);

    it('a revoked host is cut off at once: its running command fails with the reason, the agent stops, its credential is dead', async () => {
      const handle = await remote.create(request(ws, 'run-revoked'));
      const sleeping = remote.exec(handle, { argv: ['sleep', '30'], identity: 'agent' });
      sleeping.catch(() => undefined);
      const agent = agents.at(-1)!;
      const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
      expect((await h.call('DELETE', `/api/workspaces/${ws}/hosts/${hostId}`, { token: alice })).status).toBe(204);
      await expect(sleeping).rejects.toMatchObject({ code: 'HOST.GONE', message: /revoked by alice/ });
      expect(await exited).toBe(3);
      expect(channel.directory.liveHosts(ws)).toEqual([]);
      const credential = (JSON.parse(readFileSync(state, 'utf8')) as { credential: string }).credential;
      await expect(hostChannelAuthority(h.deps).authenticate(credential)).rejects.toMatchObject({ code: 'HOST.REVOKED' });
      expect((await readSandboxHost(h.store, { workspaceId: ws, hostId })).status).toBe('Revoked');
    }, 60_000);
  });
}
