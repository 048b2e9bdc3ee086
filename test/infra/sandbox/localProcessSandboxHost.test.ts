import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import type { SandboxHandle, SandboxRequest } from '../../../domain/ports/sandboxHost';
import { TICKET_ENV, launchTickets } from '../../../infra/sandbox/launchTickets';
import { DeliveryOutsideCredentialDirError, LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { TemplatePathError } from '../../../infra/sandbox/sandboxFiles';
import { ChannelRequestError, assertGitCommand } from '../../../infra/sandbox/channels';
import { UntrustedProgramError, resolveTrustedProgram } from '../../../infra/sandbox/trustedPrograms';
import {
  aSecretValue,
  envDelivery,
  redactorFor,
  tempFileDelivery,
} from './sandboxTestKit';
import { spySpawns } from './spawnSpy';

const node = process.execPath;
const isRoot = process.getuid?.() === 0;
const secrets = { MODEL_KEY: aSecretValue('sk'), DEPLOY_KEY: aSecretValue('op'), NPM_TOKEN: aSecretValue('npm') };
const managed = Object.entries(secrets).map(([name, value]) => ({ name, value }));
const guard: GuardPolicy = { secretNames: Object.keys(secrets), managedValues: managed };
const redactor = redactorFor(managed);

let root: string;
let host: LocalProcessSandboxHost;
const warnings: string[] = [];
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'dp-host-'));
  host = await LocalProcessSandboxHost.open({ root, warn: (m) => warnings.push(m) });
});
afterAll(() => rm(root, { recursive: true, force: true }));

function aSandbox(overrides: Partial<SandboxRequest> = {}): SandboxRequest {
  return { runId: 'run-1', files: { 'agent.js': 'console.log("agent")' }, redactor, guard, ...overrides };
}

describe('LocalProcessSandboxHost', () => {
  it('isolates when running as root and stays quiet about it; otherwise warns at start', () => {
    expect(host.capabilities.isolated).toBe(isRoot);
    expect(warnings.length).toBe(isRoot ? 0 : 1);
  });

  it('runs the agent and credential processes as distinct unprivileged uids with a scrubbed env', async () => {
    process.env.DP_TEST_HOST_ONLY = 'must-not-leak';
    const sandbox = await host.create(aSandbox({ env: { LOG_LEVEL: 'debug' } }));
    try {
      const script = 'console.log(JSON.stringify({uid:process.getuid(),groups:process.getgroups(),env:Object.keys(process.env).sort(),cwd:process.cwd()}))';
      const agent = JSON.parse((await host.exec(sandbox, { argv: [node, '-e', script], identity: 'agent' })).stdout) as { uid: number; groups: number[]; env: string[]; cwd: string };
      const op = JSON.parse((await host.exec(sandbox, { argv: [node, '-e', script], identity: 'credential' })).stdout) as typeof agent;
      const op2 = JSON.parse((await host.exec(sandbox, { argv: [node, '-e', script], identity: 'credential' })).stdout) as typeof agent;
      expect(agent.cwd).toBe(sandbox.workspace);
      for (const p of [agent, op]) {
        expect(p.env).not.toContain('DP_TEST_HOST_ONLY');
        expect(p.env).toEqual(expect.arrayContaining(['HOME', 'PATH', 'TMPDIR', TICKET_ENV]));
      }
      // The RunSpec's standing env is the agent's; a credential process gets the fixed env only.
      expect(agent.env).toContain('LOG_LEVEL');
      expect(op.env).not.toContain('LOG_LEVEL');
      if (isRoot) {
        expect(agent.uid).not.toBe(0);
        expect(new Set([agent.uid, op.uid, op2.uid]).size).toBe(3);
        expect(agent.groups).toContain(host.inspect(sandbox).groupGid);
        expect(op.groups).toContain(host.inspect(sandbox).groupGid);
      }
    } finally {
      delete process.env.DP_TEST_HOST_ONLY;
      await host.teardown(sandbox);
    }
  });

  it('a credential process gets a fixed env: standing vars, even ones that would steer node, never reach it', async () => {
    const sandbox = await host.create(aSandbox({ env: { STANDING_MARKER: 'from-the-run-spec' } }));
    try {
      const script = 'console.log(JSON.stringify(process.env))';
      const env = JSON.parse((await host.exec(sandbox, { argv: ['node', '-e', script], identity: 'credential' })).stdout) as Record<string, string>;
      expect(env.STANDING_MARKER).toBeUndefined();
      // Isolated, the egress proxy's variables too: the proxy is the only way out of the sandbox's network.
      const proxyVars = sandbox.isolated ? ['HTTPS_PROXY', 'HTTP_PROXY', 'https_proxy', 'http_proxy', 'NO_PROXY', 'no_proxy'] : [];
      expect(Object.keys(env).filter((k) => !['PWD', 'OLDPWD', 'SHLVL', '_'].includes(k)).sort()).toEqual(['HOME', 'LANG', 'LC_ALL', 'PATH', 'TMPDIR', TICKET_ENV, 'TZ', ...proxyVars].sort());
      expect(env.PATH?.split(':').every((dir) => path.isAbsolute(dir) && !dir.startsWith(root))).toBe(true);
      const agent = JSON.parse((await host.exec(sandbox, { argv: [node, '-e', script], identity: 'agent' })).stdout) as Record<string, string>;
      expect(agent.STANDING_MARKER).toBe('from-the-run-spec');
    } finally {
      await host.teardown(sandbox);
    }
  });

  it('a credential process runs a program from the trusted directories only: a template file named git is not git', async () => {
    const sandbox = await host.create(aSandbox({ files: { git: '#!/bin/sh\necho PLANTED\n', 'bin/npm': '#!/bin/sh\necho PLANTED\n' } }));
    try {
      for (const program of ['./git', 'git/../git', 'bin/npm', path.join(sandbox.workspace, 'git'), '/tmp/git']) {
        const refused = await host.exec(sandbox, { argv: [program, '--version'], identity: 'credential' }).then(() => undefined, (e: unknown) => e);
        expect(refused, program).toBeInstanceOf(UntrustedProgramError);
      }
      expect((await host.exec(sandbox, { argv: ['git', '--version'], identity: 'credential' })).stdout).toMatch(/^git version/);
      expect(() => assertGitCommand('GIT_TOKEN', ['./git', 'clone', 'https://example.com/r.git'])).toThrow(ChannelRequestError);
      expect(() => assertGitCommand('GIT_TOKEN', [path.join(sandbox.workspace, 'git'), 'clone', 'https://example.com/r.git'])).toThrow(ChannelRequestError);
      expect(() => assertGitCommand('GIT_TOKEN', [resolveTrustedProgram('git'), 'clone', 'https://example.com/r.git'])).not.toThrow();
    } finally {
      await host.teardown(sandbox);
    }
  });

  it('lets credential processes and the agent share the workspace, but not a credential directory', async () => {
    const sandbox = await host.create(aSandbox());
    try {
      const op = await host.exec(sandbox, {
        argv: [node, '-e', 'const fs=require("fs");fs.writeFileSync("from-op.txt","ok");console.log(fs.readFileSync(process.env.KEY_FILE,"utf8").length)'],
        identity: 'credential',
        credentials: async (target) => [await tempFileDelivery(target, 'KEY_FILE', secrets.DEPLOY_KEY)],
      });
      expect(op.stdout.trim()).toBe(String(secrets.DEPLOY_KEY.length));
      const agent = await host.exec(sandbox, { argv: [node, '-e', 'process.stdout.write(require("fs").readFileSync("from-op.txt","utf8"))'], identity: 'agent' });
      expect(agent.stdout).toBe('ok');
      // The operation's credential directory is gone once it exited.
      expect(readdirSync(host.inspect(sandbox).credentialDir)).toEqual([]);
    } finally {
      await host.teardown(sandbox);
    }
  });

  it('refuses a delivery that writes outside its process credential directory, and cleans it up', async () => {
    const sandbox = await host.create(aSandbox());
    try {
      const stray = path.join(sandbox.workspace, 'stray-credential');
      const error = await host
        .exec(sandbox, {
          argv: [node, '-e', '1'],
          identity: 'credential',
          credentials: async () => {
            writeFileSync(stray, secrets.DEPLOY_KEY);
            return [{ env: {}, argsAfterCommand: [], paths: [stray], cleanup: () => rm(stray, { force: true }) }];
          },
        })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DeliveryOutsideCredentialDirError);
      expect(existsSync(stray)).toBe(false);
    } finally {
      await host.teardown(sandbox);
    }
  });

  it('refuses template paths that escape the workspace', async () => {
    for (const file of ['../escape.js', '/etc/evil', 'a/../../escape.js'])
      await expect(host.create(aSandbox({ files: { [file]: 'x' } }))).rejects.toBeInstanceOf(TemplatePathError);
  });

  it('every process of a sandbox lifecycle is spawned with a ticket the launcher issued', async () => {
    const spy = spySpawns();
    let sandbox: SandboxHandle | undefined;
    try {
      sandbox = await host.create(aSandbox());
      await host.exec(sandbox, { argv: [node, 'agent.js'], identity: 'agent' });
      const server = await host.start(sandbox, { argv: [node, '-e', 'setInterval(()=>{},1000)'], identity: 'credential', credentials: async () => [envDelivery('K', 'credential-value-1')] });
      await host.exec(sandbox, { argv: ['/bin/sh', '-c', 'exit 3'], identity: 'credential' });
      await server.stop();
      await host.teardown(sandbox);
      sandbox = undefined;
    } finally {
      spy.restore();
      if (sandbox) await host.teardown(sandbox);
    }
    expect(spy.calls.length).toBeGreaterThanOrEqual(isRoot ? 4 : 3);
    for (const call of spy.calls) {
      const ticket = call.env?.[TICKET_ENV];
      expect(ticket, `${call.fn} ${call.file}`).toMatch(/^[0-9a-f]{32}$/);
      expect(launchTickets.wasIssued(ticket ?? '')).toBe(true);
    }
    expect(new Set(spy.calls.map((c) => c.env?.[TICKET_ENV])).size).toBe(spy.calls.length);
  });

  it.each(['auto', 'off'] as const)('a sandbox process holds only descriptors 0, 1 and 2 though its host holds more (isolation %s)', async (isolation) => {
    const out = path.join(root, `fds-host-${isolation}.cjs`);
    const { build } = await import('rolldown');
    await build({ input: path.join(__dirname, 'inheritedFdsHost.ts'), platform: 'node', output: { file: out, format: 'cjs' }, logLevel: 'silent' });
    const held = openSync(path.join(root, `held-${isolation}`), 'w');
    try {
      // Descriptor 17 of the child host is inherited without O_CLOEXEC, as a supervisor's or a shell's would be.
      const stdio = ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(14).fill('ignore'), held] as const;
      const child = spawnSync(node, [out, isolation], { encoding: 'utf8', stdio: [...stdio], timeout: 30_000 });
      const seen = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { isolated: boolean; control: number[]; agent: number[]; credential: number[] };
      expect(seen.isolated).toBe(isolation === 'auto' && isRoot);
      expect(seen.control).toEqual(expect.arrayContaining([17])); // the control: a plain child inherits them
      expect(seen.agent).toEqual([0, 1, 2]);
      expect(seen.credential).toEqual([0, 1, 2]);
    } finally {
      closeSync(held);
    }
  });
});

describe('LocalProcessSandboxHost without isolation', () => {
  it('says so at start and reports isolated=false with a reason, so the run records IsolationDegraded', async () => {
    const said: string[] = [];
    const degraded = await LocalProcessSandboxHost.open({ root, isolation: 'off', warn: (m) => said.push(m) });
    expect(degraded.capabilities).toEqual({ isolated: false, reason: expect.any(String) });
    expect(said.join(' ')).toMatch(/NOT isolated/);
    const sandbox = await degraded.create(aSandbox());
    expect(sandbox.isolated).toBe(false);
    const result = await degraded.exec(sandbox, { argv: [node, 'agent.js'], identity: 'agent' });
    expect(result.stdout).toBe('agent\n');
    const { root: sandboxRoot } = degraded.inspect(sandbox);
    await degraded.teardown(sandbox);
    expect(existsSync(sandboxRoot)).toBe(false);
  });
});
