import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SandboxHandle, SandboxRequest } from '../../../../domain/ports/sandboxHost';
import { createRedactor } from '../../../../domain/redaction';
import { hostChannelAuthority } from '../../../../functions/hostChannelAuthority';
import { selfSignedCertificate } from '../../../../localhost/selfSignedCertificate';
import { HostChannelServer } from '../../../../infra/sandbox/remote/hostChannelServer';
import { STREAMED_BYTES_PER_PROCESS } from '../../../../infra/sandbox/remote/outputStreaming';
import { RemoteSandboxHost } from '../../../../infra/sandbox/remote/remoteSandboxHost';
import { createApiHarness } from '../../../support/apiHarness';

// Starting an agent (and its inner host's isolation probe) is slow on a loaded 2-core runner.
vi.setConfig({ hookTimeout: 180_000 });

/** Output streamed over the host channel while a process runs: redacted on the platform, ordered, bounded. */
const projectRoot = path.resolve(__dirname, '../../../..');
const DELIVERED = 'delivered-lease-Hq2wE8rT5yU1iO4p';
/** A workspace value the agent never holds: only the platform's redactor knows it. */
const MANAGED = 'managed-only-Zx9cV3bN6mA1sD7f';
const dir = mkdtempSync(path.join(tmpdir(), 'dp-agent-stream-'));
let channel: HostChannelServer;
let remote: RemoteSandboxHost;
let agent: ChildProcess;
let ws: string;
const frames: string[] = [];

async function until(check: () => boolean, what: string, ms = 150_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const request = (runId: string): SandboxRequest => ({
  runId, files: {}, placement: { workspaceId: ws },
  redactor: createRedactor([{ name: 'DELIVERED', value: DELIVERED }, { name: 'MANAGED', value: MANAGED }]),
  guard: { secretNames: ['DELIVERED', 'MANAGED'], managedValues: [{ name: 'DELIVERED', value: DELIVERED }, { name: 'MANAGED', value: MANAGED }] },
});

beforeAll(async () => {
  const api = await createApiHarness();
  const alice = await api.issuer.token('alice');
  ws = ((await api.call('POST', '/api/workspaces', { token: alice, body: { name: 'Streaming' } })).json as { id: string }).id;
  const tls = selfSignedCertificate(path.join(dir, 'tls'));
  channel = await HostChannelServer.start({ tls, authority: hostChannelAuthority(api.deps), tap: (direction, raw) => void (direction === 'from-host' && frames.push(raw)) });
  remote = new RemoteSandboxHost(channel);
  const { enrolmentToken } = (await api.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'stream-box' } })).json as { enrolmentToken: string };
  agent = spawn(process.execPath, [
    path.join(projectRoot, 'scripts', 'hostAgent.js'), '--platform', channel.url, '--ca', tls.certFile, '--state', path.join(dir, 'agent.json'),
    '--token', enrolmentToken, '--isolation', 'off', '--root', path.join(dir, 'sandboxes'),
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  await until(() => channel.liveHosts(ws).length === 1, 'the agent to connect');
}, 180_000);

afterAll(async () => {
  if (agent?.exitCode === null) agent.kill('SIGKILL');
  await channel?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('streaming output through the host agent', () => {
  let sandbox: SandboxHandle;
  beforeAll(async () => {
    sandbox = await remote.create(request('run-stream'));
  });
  afterAll(async () => {
    if (sandbox) await remote.teardown(sandbox);
  });

  it("a running process's output arrives before it exits, redacted of delivered and platform-only values even split across writes", async () => {
    const streamed: Array<{ stream: string; text: string }> = [];
    // The managed value is computed inside (its reverse is in argv, which the guard cannot match): only the platform can redact it.
    const script = `const v=process.argv[1].split('').reverse().join('');const d=process.env.DELIVERED;
process.stdout.write('tick-1 '+v.slice(0,9));setTimeout(()=>{process.stdout.write(v.slice(9)+' tock\\n');process.stderr.write('lease '+d+'\\n');},100);
const t=setInterval(()=>{if(require('fs').existsSync('release')){clearInterval(t);process.stdout.write('bye\\n');}},20);`;
    const running = await remote.start(sandbox, {
      argv: [process.execPath, '-e', script, [...MANAGED].reverse().join('')], identity: 'credential',
      credentials: async () => [{ env: { DELIVERED }, argsAfterCommand: [], paths: [], cleanup: async () => undefined }],
      onOutput: (stream, text) => streamed.push({ stream, text }),
    });
    let exited = false;
    void running.exited.finally(() => (exited = true));
    const seen = (stream: string): string => streamed.filter((s) => s.stream === stream).map((s) => s.text).join('');
    await until(() => seen('stdout').includes(' tock') && seen('stderr').includes('lease '), 'the streamed lines');
    // Still running: the output came while it ran, not with its exit.
    expect(exited).toBe(false);
    expect(seen('stdout')).toMatch(/^tick-1 \[REDACTED:MANAGED\] tock\n/);
    expect(seen('stderr')).toContain('lease [REDACTED');
    const everything = JSON.stringify(streamed) + frames.join('\n');
    expect(everything).not.toContain(DELIVERED);
    // The agent does not know the managed value: on the wire it is in the clear only as the platform redacts it here.
    expect(JSON.stringify(streamed)).not.toContain(MANAGED.slice(0, 9));
    expect(JSON.stringify(streamed)).not.toContain(MANAGED.slice(9));

    await remote.exec(sandbox, { argv: ['touch', 'release'], identity: 'agent' });
    const result = await running.exited;
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toMatch(/tock\nbye\n$/);
    expect(result.stdout + result.stderr).not.toContain(MANAGED);
    expect(result.stdout + result.stderr).not.toContain(DELIVERED);
  }, 60_000);

  it('is bounded: a flood streams at most its limit, and the process still completes with its (truncated) result', async () => {
    let streamedBytes = 0;
    const flood = `const chunk='x'.repeat(65536)+'\\n';let n=0;const go=()=>{while(n<160){n++;if(!process.stdout.write(chunk))return process.stdout.once('drain',go)}};go()`;
    const result = await remote.exec(sandbox, {
      argv: [process.execPath, '-e', flood], identity: 'agent', maxOutputBytes: 2 * 1024 * 1024, timeoutMs: 60_000,
      onOutput: (_stream, text) => (streamedBytes += Buffer.byteLength(text)),
    });
    expect(result.exitCode).toBe(0);
    expect(result.truncated).toBe(true);
    expect(streamedBytes).toBeGreaterThan(0);
    expect(streamedBytes).toBeLessThanOrEqual(STREAMED_BYTES_PER_PROCESS);
  }, 120_000);
});
