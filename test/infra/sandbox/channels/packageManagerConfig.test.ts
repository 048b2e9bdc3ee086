import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelPreparers, ChannelRequestError, planPackageInstall } from '../../../../infra/sandbox/channels';
import type { CredentialDelivery, CredentialRequest } from '../../../../infra/sandbox/credentialDelivery';
import { startNpmRegistry, type NpmRegistry } from '../../../support/npmRegistry';
import { launchWithDelivery } from '../../../support/launchWithDelivery';
import { aScratch, aToken, baseEnv, filesContaining } from './builders';
import { NPM_CREDENTIAL_FLAGS } from '../../../../domain/secretPolicy';

const token = aToken();
let registry: NpmRegistry;
const s = aScratch();
const home = path.join(s.root, 'home');
const cache = path.join(s.root, 'npm-cache');

beforeAll(async () => {
  registry = await startNpmRegistry(token);
  mkdirSync(home);
  writeFileSync(path.join(s.workspace, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  // A hostile project config trying to switch scripts back on in the authenticated install.
  writeFileSync(path.join(s.workspace, '.npmrc'), 'ignore-scripts=false\n');
});
afterAll(async () => {
  await registry.close();
  s.dispose();
});

const prepare = channelPreparers['package-manager-config'];
function npmRequest(overrides: Partial<CredentialRequest> = {}): CredentialRequest {
  return { secretName: 'NPM_TOKEN', value: token, use: 'npm', host: registry.origin, ...overrides };
}
/** Offline from everything but the local registry: private HOME and cache, no audit, fund or update checks. */
const npmEnv = () => ({
  ...baseEnv(home),
  npm_config_cache: cache,
  npm_config_update_notifier: 'false',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
});
/** Through the real guarded launcher, whose guard and redactor know the token. */
const launch = (command: readonly string[], delivery: CredentialDelivery | undefined, options: { cwd: string; env: Record<string, string> }) =>
  launchWithDelivery(command, delivery, { ...options, secrets: [{ name: 'NPM_TOKEN', value: token }] });
const installCommand = () => ['npm', 'install', registry.packageName, '--registry', `${registry.origin}/`, '--no-audit', '--no-fund'];
const marker = () => path.join(s.workspace, 'install-marker.json');
const installed = () => path.join(s.workspace, 'node_modules', registry.packageName);

describe('the leak detectors themselves', () => {
  it('catch a token in npm env and a token-bearing config read by an install script', async () => {
    const canaryToken = aToken();
    const canary = await startNpmRegistry(canaryToken);
    const workspace = mkdtempSync(path.join(s.root, 'canary-'));
    try {
      writeFileSync(path.join(workspace, 'package.json'), JSON.stringify({ name: 'canary', version: '1.0.0', private: true }));
      const userconfig = path.join(workspace, 'leaky-npmrc');
      writeFileSync(userconfig, `//${new URL(canary.origin).host}/:_authToken=${canaryToken}\n`);
      const command = ['npm', 'install', canary.packageName, '--registry', `${canary.origin}/`, '--userconfig', userconfig];
      const run = await launch(command, undefined, { cwd: workspace, env: { ...npmEnv(), npm_config_cache: path.join(workspace, 'cache'), CANARY: canaryToken } });
      expect(run.code).toBe(0);
      expect(canary.leaks.map((l) => l.where)).toContain('environ');
      const seen = JSON.parse(readFileSync(path.join(workspace, 'install-marker.json'), 'utf8')) as { userconfigHasAuthToken: boolean };
      expect(seen.userconfigHasAuthToken).toBe(true);
      expect(filesContaining(workspace, canaryToken).length).toBeGreaterThan(0);
    } finally {
      await canary.close();
    }
  });
});

describe('package-manager-config channel against a local registry', () => {
  it('without the credential, the install is refused by the registry (401)', async () => {
    const run = await launch(installCommand(), undefined, { cwd: s.workspace, env: npmEnv() });
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/E401|401/);
    expect(existsSync(installed())).toBe(false);
    expect(registry.requests.every((r) => !r.authorized)).toBe(true);
  });

  it('a real npm install authenticates, skips scripts, and leaves no credential file behind', async () => {
    const [authenticated, ...scripts] = planPackageInstall(installCommand(), npmRequest());
    expect(authenticated?.credential?.use).toBe('npm');
    expect(scripts.every((p) => p.credential === undefined)).toBe(true);

    const credentialDir = mkdtempSync(path.join(s.root, 'cred-'));
    const delivery = await prepare(authenticated?.credential ?? npmRequest(), { credentialDir });
    const config = delivery.paths[0] ?? '';
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(delivery.argsAfterCommand).toEqual(['--userconfig', config, '--ignore-scripts']);
    expect(delivery.env).toEqual({});

    const before = registry.requests.length;
    const run = await launch(authenticated?.command ?? [], delivery, { cwd: s.workspace, env: npmEnv() });
    expect(run.stderr).not.toMatch(/ERR!/);
    expect(run.code).toBe(0);
    expect(readFileSync(path.join(installed(), 'index.js'), 'utf8')).toContain('dp-fixture-pkg');
    const served = registry.requests.slice(before);
    expect(served.map((r) => r.url)).toEqual(expect.arrayContaining([`/${registry.packageName}`, expect.stringMatching(/\.tgz$/)]));
    expect(served.every((r) => r.authorized)).toBe(true);

    expect(existsSync(marker())).toBe(false); // --ignore-scripts beat the project's ignore-scripts=false
    expect(readdirSync(credentialDir)).toEqual([]);
    expect(existsSync(config)).toBe(false);
    expect(run.argv.join('\0')).not.toContain(token);
    expect(JSON.stringify(run.env)).not.toContain(token);
    expect(registry.leaks).toEqual([]); // no live process held the token in argv or env during any request
    expect(registry.tokenSeenInUrl).toBe(false);
    for (const dir of [s.workspace, home, cache]) expect(filesContaining(dir, token)).toEqual([]);
    expect(readFileSync(path.join(s.workspace, '.npmrc'), 'utf8')).toBe('ignore-scripts=false\n');
  });

  it('then the lifecycle scripts run in a second process that has no credential within reach', async () => {
    const [, ...scripts] = planPackageInstall(installCommand(), npmRequest());
    expect(scripts.map((p) => p.command)).toEqual([['npm', 'rebuild']]);
    for (const step of scripts) {
      const run = await launch(step.command, undefined, { cwd: s.workspace, env: npmEnv() });
      expect(run.code).toBe(0);
    }
    const seen = JSON.parse(readFileSync(marker(), 'utf8')) as {
      event: string;
      userconfig: string | null;
      userconfigHasAuthToken: boolean;
      argv: string[];
      env: Record<string, string>;
    };
    expect(seen.event).toBe('install');
    expect(seen.userconfig).not.toMatch(/npmrc-[0-9a-f]+$/); // npm's default, not the channel's file
    expect(seen.userconfigHasAuthToken).toBe(false);
    expect(JSON.stringify(seen)).not.toContain(token);
    expect(filesContaining(s.workspace, token)).toEqual([]);
  });

  it('the config file scopes the token to the registry host and is owned by the receiving uid', async () => {
    const credentialDir = mkdtempSync(path.join(s.root, 'cred-'));
    const delivery = await prepare(npmRequest(), { credentialDir, uid: 4242, gid: 4343 });
    const file = delivery.paths[0] ?? '';
    const host = new URL(registry.origin).host;
    expect(readFileSync(file, 'utf8').split('\n')).toEqual([
      `registry=${registry.origin}/`,
      `//${host}/:_authToken=${token}`,
      'ignore-scripts=true',
      '',
    ]);
    expect([statSync(file).uid, statSync(file).gid, statSync(file).mode & 0o777]).toEqual([4242, 4343, 0o600]);
    await delivery.cleanup();
    await delivery.cleanup();
    expect(readdirSync(credentialDir)).toEqual([]);
  });

  it('refuses a value that would inject config lines, and plain http to a non-loopback registry', async () => {
    const credentialDir = mkdtempSync(path.join(s.root, 'cred-'));
    for (const request of [
      npmRequest({ value: `${token}\nscript-shell=/tmp/evil` }),
      npmRequest({ host: 'http://registry.example' }),
      npmRequest({ host: 'https://registry.example/some/path' }),
    ]) {
      const error = await prepare(request, { credentialDir }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ChannelRequestError);
      expect(String(error)).not.toContain(token);
    }
    expect(readdirSync(credentialDir)).toEqual([]);
  });
});

describe('planPackageInstall', () => {
  const request = (): CredentialRequest => ({ secretName: 'NPM_TOKEN', value: aToken(), use: 'npm', host: 'registry.example' });

  it('a bare install or ci also owes the project its own install scripts, run without the credential', () => {
    for (const command of [['npm', 'ci'], ['npm', 'install', '--no-audit']]) {
      const [first, ...rest] = planPackageInstall(command, request());
      expect(first?.command).toEqual([...command, ...NPM_CREDENTIAL_FLAGS]);
      expect(rest.map((p) => p.command.slice(1).join(' '))).toEqual([
        'rebuild',
        ...['preinstall', 'install', 'postinstall', 'prepublish', 'preprepare', 'prepare', 'postprepare'].map(
          (e) => `run-script --if-present ${e}`,
        ),
      ]);
      expect(rest.every((p) => p.credential === undefined)).toBe(true);
    }
  });

  it('refuses flags that would win over the channel, commands that are not installs, and other programs', () => {
    for (const command of [
      ['npm', 'install', '--no-ignore-scripts'],
      ['npm', 'install', '--ignore-scripts=false'],
      ['npm', 'ci', '--userconfig', '/tmp/other'],
      ['npm', 'install', '--userconfig=/tmp/other'],
      ['npm', 'install', '--script-shell=/tmp/evil'],
      ['npm', 'run', 'build'],
      ['npm', 'publish'],
      ['yarn', 'install'],
      [],
    ]) {
      expect(() => planPackageInstall(command, request()), command.join(' ')).toThrow(ChannelRequestError);
    }
    expect(() => planPackageInstall(['npm', 'ci'], { ...request(), use: 'env' })).toThrow(ChannelRequestError);
  });
});
