import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import type { SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { preparerFor } from '../../../../infra/sandbox/channels';
import type { CredentialRequest } from '../../../../infra/sandbox/credentialDelivery';
import { LocalProcessSandboxHost } from '../../../../infra/sandbox/localProcessSandboxHost';
import { attackDirs, holdUntilPlanted, lootHolding, startPlanter, startTrap } from '../../../support/gitConfigAttack';
import { hermeticGitEnv, startGitHttpServer, type GitHttpServer } from '../../../support/gitHttpServer';
import { startNpmRegistry, type NpmRegistry } from '../../../support/npmRegistry';
import { aToken } from './builders';

const gitToken = aToken();
const npmToken = aToken();
const managed = [
  { name: 'GIT_TOKEN', value: gitToken },
  { name: 'NPM_TOKEN', value: npmToken },
];
const guard: GuardPolicy = { secretNames: managed.map((m) => m.name), managedValues: managed };
let host: LocalProcessSandboxHost;
let sandbox: SandboxHandle;
let server: GitHttpServer;
let registry: NpmRegistry;
/** Runs before the git server serves each request: an attack test may hold the client there. */
let onGitRequest: () => void = () => undefined;

beforeAll(async () => {
  [server, registry] = await Promise.all([startGitHttpServer(gitToken, { onRequest: () => onGitRequest() }), startNpmRegistry(npmToken)]);
  await server.createRepo('project', { 'README.md': 'hello\n' });
  // The servers are on the host's loopback: isolated, the sandbox reaches them only as declared test servers.
  const testServers = [new URL(server.origin).host, new URL(registry.origin).host];
  host = await LocalProcessSandboxHost.open({ warn: () => undefined, egress: { testServers: () => testServers } });
  sandbox = await host.create({
    runId: 'channels',
    files: { 'package.json': JSON.stringify({ name: 'app', version: '1.0.0', private: true }) },
    redactor: createRedactor(managed),
    guard,
    env: { GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@example.invalid', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@example.invalid' },
  });
});
afterAll(async () => {
  if (sandbox) await host.teardown(sandbox);
  await Promise.all([server?.close(), registry?.close()]);
});

describe('a credentialed clone of an install step, while a daemon an earlier step left writes the workspace', () => {
  const gitRequest = (): CredentialRequest => ({ secretName: 'GIT_TOKEN', value: gitToken, use: 'git', host: server.origin });
  const basic = () => Buffer.from(`x-access-token:${gitToken}`).toString('base64');
  /** As the install step runs it: a private directory, handed to the workspace root after git exits. */
  const installClone = (dir: string) =>
    host.exec(sandbox, {
      argv: ['git', 'clone', '--quiet', `${server.origin}/project.git`, dir],
      identity: 'credential',
      credentials: async (target) => [await preparerFor(gitRequest())(gitRequest(), target)],
      handOver: { into: '.' },
    });

  it('planted the moment git first asks the server (deterministic): no token at the listener, nothing runs', async () => {
    const trap = await startTrap();
    const { loot, signals } = attackDirs(sandbox.workspace, 'inst');
    const planter = await startPlanter(host, sandbox, { trap: trap.url, origin: server.origin, loot, pattern: 'inst-*/.git', signals, forms: 'all' });
    let held = false;
    onGitRequest = () => {
      if (held) return;
      held = true;
      holdUntilPlanted(signals);
    };
    try {
      const cloned = await installClone('inst-clone');
      expect(held && existsSync(path.join(signals, 'done'))).toBe(true);
      expect(cloned.exitCode, cloned.stderr).toBe(0);
      expect(readFileSync(path.join(sandbox.workspace, 'inst-clone', 'README.md'), 'utf8')).toBe('hello\n');
      expect(trap.seen).toEqual([]);
      expect(lootHolding(loot, gitToken)).toEqual([]);
    } finally {
      onGitRequest = () => undefined;
      await planter.stop();
      await trap.close();
    }
  });

  it('raced 50 times by a background writer of proxies: no token at the listener, every clone handed over', { timeout: 300_000 }, async () => {
    const trap = await startTrap();
    const { loot } = attackDirs(sandbox.workspace, 'irace');
    const planter = await startPlanter(host, sandbox, { trap: trap.url, origin: server.origin, loot, pattern: 'irace-*/.git', forms: 'proxy' });
    try {
      for (let i = 0; i < 50; i++) {
        const cloned = await installClone(`irace-${i}`);
        expect(trap.seen.filter((line) => line.includes(basic())), `clone ${i}`).toEqual([]);
        expect(cloned.exitCode, `clone ${i}: ${cloned.stderr}`).toBe(0);
        expect(existsSync(path.join(sandbox.workspace, `irace-${i}`, 'README.md'))).toBe(true);
      }
      expect(trap.seen).toEqual([]);
    } finally {
      await planter.stop();
      await trap.close();
    }
  });

  it('the hand-over never replaces what the workspace already has, and the private directory is gone', async () => {
    mkdirSync(path.join(sandbox.workspace, 'taken'));
    writeFileSync(path.join(sandbox.workspace, 'taken', 'KEEP'), 'mine\n');
    const cloned = await installClone('taken');
    expect(cloned.exitCode).not.toBe(0);
    expect(cloned.stderr).toMatch(/taken already exists in the workspace/);
    expect(readdirSync(path.join(sandbox.workspace, 'taken'))).toEqual(['KEEP']);
    expect(readdirSync(host.inspect(sandbox).credentialDir).filter((e) => !e.startsWith('handover-'))).toEqual([]);
  });

  it('git does not discover a repository planted above its private directory', async () => {
    const trap = await startTrap();
    // A parent of the credential root that every uid may enter, holding a repository whose config points
    // the server's URL at the trap (a `.git` in /dev/shm would be the same for the default root).
    const parent = mkdtempSync(path.join(tmpdir(), 'dp-ceiling-'));
    chmodSync(parent, 0o755);
    execFileSync('git', ['init', '--quiet', parent], { env: hermeticGitEnv(parent) });
    for (const [key, value] of [[`http.${server.origin}/.proxy`, trap.url], [`url.${trap.url}/.insteadOf`, `${server.origin}/`]] as const)
      execFileSync('git', ['config', key, value], { cwd: parent, env: hermeticGitEnv(parent) });
    // The trap is declared too, so that if git did read the planted config, the redirect could get through.
    const reachable = [new URL(server.origin).host, new URL(trap.url).host];
    const other = await LocalProcessSandboxHost.open({
      warn: () => undefined, root: path.join(parent, 'sandboxes'), credentialRoot: path.join(parent, 'credentials'), egress: { testServers: () => reachable },
    });
    const box = await other.create({ runId: 'ceiling', files: {}, redactor: createRedactor(managed), guard });
    try {
      const listed = await other.exec(box, {
        argv: ['git', 'ls-remote', `${server.origin}/project.git`],
        identity: 'credential',
        credentials: async (target) => [await preparerFor(gitRequest())(gitRequest(), target)],
        handOver: { into: '.' },
      });
      expect(listed.exitCode, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/refs\/heads\/main/);
      expect(trap.seen).toEqual([]);
    } finally {
      await other.teardown(box);
      await trap.close();
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
