import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor } from '../../../../domain/redaction';
import type { GuardPolicy } from '../../../../domain/launchGuard';
import type { ProcessCredentialTarget, SandboxHandle } from '../../../../domain/ports/sandboxHost';
import { NPM_CREDENTIAL_FLAGS } from '../../../../domain/secretPolicy';
import { assertGitCommand, planPackageInstall, preparerFor } from '../../../../infra/sandbox/channels';
import type { CredentialDelivery, CredentialRequest } from '../../../../infra/sandbox/credentialDelivery';
import { LocalProcessSandboxHost } from '../../../../infra/sandbox/localProcessSandboxHost';
import { attackDirs, holdUntilPlanted, lootHolding, startPlanter, startTrap } from '../../../support/gitConfigAttack';
import { hermeticGitEnv, startGitHttpServer, type GitHttpServer } from '../../../support/gitHttpServer';
import { startNpmRegistry, type NpmRegistry } from '../../../support/npmRegistry';
import { aToken, filesContaining } from './builders';

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

/** What each delivery looked like on disk when the host handed it to the launcher. */
const seen: Array<{ credentialDir: string; uid: number; gid: number; mode: number; targetUid?: number }> = [];
function credentials(request: CredentialRequest) {
  return async (target: ProcessCredentialTarget): Promise<CredentialDelivery[]> => {
    const delivery = await preparerFor(request)(request, target);
    for (const p of delivery.paths) {
      const stat = statSync(p);
      seen.push({ credentialDir: target.credentialDir, uid: stat.uid, gid: stat.gid, mode: stat.mode & 0o777, ...(target.uid !== undefined ? { targetUid: target.uid } : {}) });
    }
    return [delivery];
  };
}

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

describe('channels through the local process sandbox host (uid isolation when root)', () => {
  it('clone as a credential process, commit as the agent, push as another credential process', async () => {
    const clone = ['git', 'clone', '--quiet', `${server.origin}/project.git`, 'project'];
    assertGitCommand('GIT_TOKEN', clone);
    const gitRequest: CredentialRequest = { secretName: 'GIT_TOKEN', value: gitToken, use: 'git', host: server.origin };
    const cloned = await host.exec(sandbox, { argv: clone, identity: 'credential', credentials: credentials(gitRequest) });
    expect(cloned.stderr).toBe('');
    expect(cloned.exitCode).toBe(0);

    const commit = await host.exec(sandbox, {
      argv: ['sh', '-c', 'echo change > CHANGE.md && git -c safe.directory="*" add CHANGE.md && git -c safe.directory="*" commit --quiet -m Change && git -c safe.directory="*" rev-parse HEAD'],
      identity: 'agent',
      cwd: 'project',
    });
    expect(commit.exitCode).toBe(0);

    const push = ['git', 'push', '--quiet', 'origin', 'main'];
    assertGitCommand('GIT_TOKEN', push);
    const pushed = await host.exec(sandbox, { argv: push, identity: 'credential', cwd: 'project', credentials: credentials(gitRequest) });
    expect(pushed.stderr).toBe('');
    expect(pushed.exitCode).toBe(0);
    expect(await server.revParse('project', 'main')).toBe(commit.stdout.trim());

    expect(readFileSync(path.join(sandbox.workspace, 'project', '.git', 'config'), 'utf8')).not.toContain(gitToken);
    expect(server.leaks).toEqual([]);
    expect(server.tokenSeenInUrl).toBe(false);
  });

  it('npm install as a credential process, then its scripts as the agent without the credential', async () => {
    const npmRequest: CredentialRequest = { secretName: 'NPM_TOKEN', value: npmToken, use: 'npm', host: registry.origin };
    const [install, ...scripts] = planPackageInstall(['npm', 'install', registry.packageName, '--no-audit', '--no-fund'], npmRequest);
    const installed = await host.exec(sandbox, { argv: install?.command ?? [], identity: 'credential', credentials: credentials(npmRequest) });
    expect(installed.exitCode, installed.stderr).toBe(0);
    expect(existsSync(path.join(sandbox.workspace, 'install-marker.json'))).toBe(false);
    for (const step of scripts) expect((await host.exec(sandbox, { argv: step.command, identity: 'agent' })).exitCode).toBe(0);
    const marker = JSON.parse(readFileSync(path.join(sandbox.workspace, 'install-marker.json'), 'utf8')) as { userconfigHasAuthToken: boolean };
    expect(marker.userconfigHasAuthToken).toBe(false);
    expect(registry.leaks).toEqual([]);
    expect(registry.requests.every((r) => r.authorized)).toBe(true);
  });

  it("isolated, npm with its credential flags still goes by the platform's egress proxy (HTTPS_PROXY), never around it", async () => {
    const view = ['npm', 'view', 'left-pad', '--registry=https://registry.dp-test.invalid/', '--fetch-retries=0', ...NPM_CREDENTIAL_FLAGS];
    const viewed = await host.exec(sandbox, { argv: view, identity: 'credential' });
    expect(viewed.exitCode).not.toBe(0);
    // `--no-https-proxy` outranks a planted .npmrc proxy and falls back to the env's HTTPS_PROXY: the proxy
    // resolved the name itself (and found nothing), so npm did not go around it.
    if (sandbox.isolated) expect(host.inspect(sandbox).egress?.refusals).toContainEqual({ host: 'registry.dp-test.invalid', port: 443, reason: 'does not resolve' });
  });

  it('every delivery was owned by its process uid (not the agent, not root when isolated), 0600/0700, and is gone', () => {
    const inspection = host.inspect(sandbox);
    expect(sandbox.isolated).toBe(process.getuid?.() === 0);
    expect(seen.length).toBe(5); // two git deliveries of two files each (token, helper), one npm config
    for (const d of seen) {
      expect([0o600, 0o700]).toContain(d.mode);
      if (sandbox.isolated) {
        expect(d.uid).toBe(d.targetUid);
        expect(d.uid).not.toBe(inspection.agentUid);
        expect(d.uid).not.toBe(0);
      }
      expect(existsSync(d.credentialDir)).toBe(false);
    }
    expect(new Set(seen.map((d) => d.credentialDir)).size).toBe(3);
    expect(readdirSync(inspection.credentialDir)).toEqual([]);
    for (const token of [gitToken, npmToken]) expect(filesContaining(sandbox.workspace, token)).toEqual([]);
  });
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
