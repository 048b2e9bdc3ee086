import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertGitCommand, channelPreparers, ChannelRequestError } from '../../../../infra/sandbox/channels';
import type { CredentialDelivery, CredentialRequest } from '../../../../infra/sandbox/credentialDelivery';
import { startGitHttpServer, type GitHttpServer } from '../../../support/gitHttpServer';
import { launchWithDelivery } from '../../../support/launchWithDelivery';
import { aScratch, aToken, baseEnv, filesContaining } from './builders';

const token = aToken();
let server: GitHttpServer;
const s = aScratch();
const home = path.join(s.root, 'home');

beforeAll(async () => {
  server = await startGitHttpServer(token);
  await server.createRepo('project', { 'README.md': 'hello\n' });
  // A user config with a storing helper: if the channel failed to reset helpers, the token would land on disk.
  mkdirSync(home);
  writeFileSync(
    path.join(home, '.gitconfig'),
    '[credential]\n\thelper = store\n[user]\n\tname = Agent\n\temail = agent@example.invalid\n[init]\n\tdefaultBranch = main\n',
  );
});
afterAll(async () => {
  await server.close();
  s.dispose();
});

const prepare = channelPreparers['git-credential-helper'];
function gitRequest(overrides: Partial<CredentialRequest> = {}): CredentialRequest {
  return { secretName: 'GIT_TOKEN', value: token, use: 'git', host: server.origin, ...overrides };
}
function freshTarget() {
  return { credentialDir: mkdtempSync(path.join(s.root, 'cred-')) };
}
/** Without a delivery nothing switches prompts off; with one, the channel does (and the launcher refuses a duplicate). */
const gitEnv = (delivered = false): Record<string, string> => (delivered ? baseEnv(home) : { ...baseEnv(home), GIT_TERMINAL_PROMPT: '0' });
/** Through the real guarded launcher, whose guard and redactor know the token. */
const git = (args: string[], cwd: string, delivery?: CredentialDelivery) =>
  launchWithDelivery(['git', ...args], delivery, { cwd, env: gitEnv(delivery !== undefined), secrets: [{ name: 'GIT_TOKEN', value: token }] });

function expectNoTraceOfToken(delivery: CredentialDelivery, credentialDir: string, argv: readonly string[], env: Record<string, string>) {
  expect(readdirSync(credentialDir)).toEqual([]);
  for (const p of delivery.paths) expect(existsSync(p)).toBe(false);
  expect(argv.join('\0')).not.toContain(token);
  expect(JSON.stringify(env)).not.toContain(token);
  expect(filesContaining(s.workspace, token)).toEqual([]);
  expect(filesContaining(home, token)).toEqual([]); // no ~/.git-credentials, no ~/.gitconfig entry
  expect(server.tokenSeenInUrl).toBe(false);
  expect(server.leaks).toEqual([]); // no live process held the token in argv or env during any request
}

describe('the leak detectors themselves', () => {
  it('catch a token in the remote URL: in git argv, on the server, and stored by a user-configured helper', async () => {
    const canaryToken = aToken();
    const canary = await startGitHttpServer(canaryToken);
    try {
      await canary.createRepo('canary', { 'README.md': 'canary\n' });
      const url = `${canary.origin.replace('http://', `http://user:${canaryToken}@`)}/canary.git`;
      const run = await git(['clone', '--quiet', url, path.join(s.workspace, 'canary')], s.workspace);
      expect(run.code).toBe(0);
      expect(canary.leaks.map((l) => l.where)).toContain('cmdline');
      expect(filesContaining(home, canaryToken).map((f) => path.basename(f))).toEqual(['.git-credentials']);
    } finally {
      await canary.close();
      rmSync(path.join(home, '.git-credentials'), { force: true });
      rmSync(path.join(s.workspace, 'canary'), { recursive: true, force: true });
    }
  });
});

describe('git-credential-helper channel against a real git http-backend', () => {
  const clone = path.join(s.workspace, 'project');

  it('without the credential, clone is refused by the server (401)', async () => {
    const run = await git(['clone', '--quiet', `${server.origin}/project.git`, path.join(s.workspace, 'refused')], s.workspace);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/Authentication failed|could not read Username|401/);
    expect(existsSync(path.join(s.workspace, 'refused'))).toBe(false);
  });

  it('a real git clone authenticates with the token, and leaves no trace of it', async () => {
    const credentialDir = freshTarget().credentialDir;
    const delivery = await prepare(gitRequest(), { credentialDir });
    expect(statSync(delivery.paths[0] ?? '').mode & 0o777).toBe(0o600); // the token file
    expect(statSync(delivery.paths[1] ?? '').mode & 0o777).toBe(0o700); // the helper script
    const before = server.requests.length;
    const run = await git(['clone', '--quiet', `${server.origin}/project.git`, clone], s.workspace, delivery);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(readFileSync(path.join(clone, 'README.md'), 'utf8')).toBe('hello\n');
    const served = server.requests.slice(before);
    expect(served.some((r) => r.user === 'x-access-token' && r.url.includes('git-upload-pack'))).toBe(true);
    const remote = execFileSync('git', ['remote', 'get-url', 'origin'], { cwd: clone, env: gitEnv(), encoding: 'utf8' }).trim();
    expect(remote).toBe(`${server.origin}/project.git`);
    expect(readFileSync(path.join(clone, '.git', 'config'), 'utf8')).not.toContain(token);
    expectNoTraceOfToken(delivery, credentialDir, run.argv, run.env);
  });

  it('a real git push authenticates with a fresh delivery, and leaves no trace of it', async () => {
    writeFileSync(path.join(clone, 'CHANGE.md'), 'pushed\n');
    expect((await git(['add', 'CHANGE.md'], clone)).code).toBe(0);
    expect((await git(['commit', '--quiet', '-m', 'Change'], clone)).code).toBe(0);
    const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: clone, env: gitEnv(), encoding: 'utf8' }).trim();

    const credentialDir = freshTarget().credentialDir;
    const delivery = await prepare(gitRequest(), { credentialDir });
    const run = await git(['push', '--quiet', 'origin', 'main'], clone, delivery);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(await server.revParse('project', 'main')).toBe(head);
    expect(server.requests.some((r) => r.user === 'x-access-token' && r.url.includes('git-receive-pack'))).toBe(true);
    expectNoTraceOfToken(delivery, credentialDir, run.argv, run.env);
  });

  it('a hostile repository cannot reach the token: its hooks, helpers and ext:: remotes do not run', async () => {
    const credentialDir = freshTarget().credentialDir;
    const hooks = path.join(s.root, 'hostile-hooks');
    const loot = path.join(s.root, 'loot');
    mkdirSync(hooks);
    mkdirSync(loot);
    // Each hook records that it ran and tries to copy the channel's files and its env out.
    for (const hook of ['pre-commit', 'pre-push', 'reference-transaction', 'post-update'])
      writeFileSync(path.join(hooks, hook), `#!/bin/sh\ntouch '${loot}/${hook}-ran'\ncat '${credentialDir}'/* > '${loot}/${hook}-files' 2>/dev/null\nenv > '${loot}/${hook}-env'\nexit 0\n`, { mode: 0o755 });
    for (const [key, value] of [
      ['core.hooksPath', hooks],
      ['credential.helper', 'store'],
      ['protocol.ext.allow', 'always'],
      ['remote.evil.url', `ext::sh -c touch% ${loot}/ext-ran`],
    ] as const)
      expect((await git(['config', '--local', key, value], clone)).code).toBe(0);
    // The hooks work when no delivery is involved: a commit runs pre-commit.
    writeFileSync(path.join(clone, 'HOSTILE.md'), 'hostile\n');
    await git(['add', 'HOSTILE.md'], clone);
    expect((await git(['commit', '--quiet', '-m', 'Hostile'], clone)).code).toBe(0);
    expect(existsSync(path.join(loot, 'pre-commit-ran'))).toBe(true);
    expect(existsSync(path.join(loot, 'reference-transaction-ran'))).toBe(true);
    for (const f of readdirSync(loot)) rmSync(path.join(loot, f));

    const delivery = await prepare(gitRequest(), { credentialDir });
    const push = await git(['push', '--quiet', 'origin', 'main'], clone, delivery);
    expect(push.code).toBe(0);
    const fetchEvil = await git(['fetch', 'evil'], clone, await prepare(gitRequest(), { credentialDir }));
    expect(fetchEvil.code).not.toBe(0);
    expect(fetchEvil.stderr).toMatch(/transport 'ext' not allowed/);

    expect(readdirSync(loot)).toEqual([]); // no hook and no ext:: command ran with the delivery
    expect(existsSync(path.join(home, '.git-credentials'))).toBe(false);
    expectNoTraceOfToken(delivery, credentialDir, push.argv, push.env);
  });

  it('refuses git commands whose options would be applied after the channel config', () => {
    for (const command of [
      ['git', '-c', 'credential.helper=store', 'push'],
      ['git', '-ccredential.helper=store', 'push'],
      ['git', '--config-env=credential.helper=HELPER', 'fetch'],
      ['git', '--exec-path=/tmp/evil', 'clone', 'https://example.com/r.git'],
      ['git', 'clone', '--upload-pack=/tmp/evil', 'https://example.com/r.git'],
      ['git', 'clone', '--config', 'filter.x.smudge=evil', 'https://example.com/r.git'],
      ['git', 'clone', '--template=/tmp/evil', 'https://example.com/r.git'],
      ['git', 'push', '--signed', 'origin', 'main'],
      ['git', 'pull', 'origin', 'main'],
      ['git', '-C', 'push', 'checkout', 'main'],
      ['git'],
      ['sh', '-c', 'git push'],
    ])
      expect(() => assertGitCommand('GIT_TOKEN', command), command.join(' ')).toThrow(ChannelRequestError);
    for (const command of [
      ['git', '-C', '/ws', 'push', '-u', 'origin', 'main'],
      ['git', 'clone', '--depth', '1', 'https://example.com/r.git'],
      ['git', '--git-dir', '/ws/.git', 'fetch', 'origin'],
      ['/usr/bin/git', 'ls-remote', 'https://example.com/r.git'],
    ])
      expect(() => assertGitCommand('GIT_TOKEN', command), command.join(' ')).not.toThrow();
  });

  it('why: a -c helper on the command line would be consulted after the channel and store the token', async () => {
    const credentialDir = freshTarget().credentialDir;
    const delivery = await prepare(gitRequest(), { credentialDir });
    const run = await git(['-c', 'credential.helper=store', 'ls-remote', `${server.origin}/project.git`], s.workspace, delivery);
    expect(run.code).toBe(0);
    expect(filesContaining(home, token).map((f) => path.basename(f))).toEqual(['.git-credentials']);
    rmSync(path.join(home, '.git-credentials'));
  });

  it('the helper answers nothing for another host, so the token is not offered elsewhere', async () => {
    const credentialDir = freshTarget().credentialDir;
    const delivery = await prepare(gitRequest({ host: 'http://127.0.0.1:1' }), { credentialDir });
    const run = await git(['clone', '--quiet', `${server.origin}/project.git`, path.join(s.workspace, 'other-host')], s.workspace, delivery);
    expect(run.code).not.toBe(0);
    expect(readdirSync(credentialDir)).toEqual([]);
  });

  it('the helper script answers get only for its protocol and host, and ignores store and erase', async () => {
    const credentialDir = freshTarget().credentialDir;
    const delivery = await prepare(gitRequest(), { credentialDir });
    const helper = delivery.paths[1] ?? '';
    const host = new URL(server.origin).host;
    // git runs a `!` helper through the shell with the action as its argument; so do we.
    const ask = (action: string, input: string) => execFileSync('sh', ['-c', `'${helper}' ${action}`], { input, encoding: 'utf8', env: baseEnv(home) });
    expect(ask('get', `protocol=http\nhost=${host}\n\n`)).toBe(`username=x-access-token\npassword=${token}\n`);
    expect(ask('get', `protocol=https\nhost=${host}\n\n`)).toBe('');
    expect(ask('get', 'protocol=http\nhost=evil.example\n\n')).toBe('');
    expect(ask('get', `protocol=http\nhost=${host}.evil.example\n\n`)).toBe('');
    expect(ask('store', `protocol=http\nhost=${host}\nusername=x\npassword=other\n\n`)).toBe('');
    expect(ask('erase', `protocol=http\nhost=${host}\n\n`)).toBe('');
    expect(readdirSync(credentialDir).sort()).toEqual(delivery.paths.map((p) => path.basename(p)).sort());
    await delivery.cleanup();
    await delivery.cleanup();
    expect(readdirSync(credentialDir)).toEqual([]);
  });

  it('files are owned by the receiving uid when the host isolates', async () => {
    const credentialDir = freshTarget().credentialDir;
    const delivery = await prepare(gitRequest(), { credentialDir, uid: 4242, gid: 4343 });
    for (const p of delivery.paths) expect([statSync(p).uid, statSync(p).gid]).toEqual([4242, 4343]);
    await delivery.cleanup();
  });

  it('refuses values that would inject protocol lines, and plain http to a non-loopback host', async () => {
    const credentialDir = freshTarget().credentialDir;
    for (const request of [
      gitRequest({ value: `${token}\nhost=evil.example` }),
      gitRequest({ host: 'http://example.com' }),
      gitRequest({ host: 'https://user:pw@example.com' }),
      gitRequest({ host: undefined }),
    ]) {
      const error = await prepare(request, { credentialDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChannelRequestError);
      expect(String(error)).not.toContain(token);
    }
    expect(readdirSync(credentialDir)).toEqual([]);
  });
});
