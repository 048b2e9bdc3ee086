import { describe, expect, it } from 'vitest';
import { NPM_CREDENTIAL_FLAGS } from '../../../../domain/secretPolicy';
import { assertGitCommand, assertPrivateGitCommand, ChannelRequestError, planPackageInstall } from '../../../../infra/sandbox/channels';

const npm = { secretName: 'NPM_TOKEN', value: 'npm-token-value-123', use: 'npm' as const, host: 'registry.example.com' };

describe('credentialed installs outside the gateway get the gateway’s hardening', () => {
  it('an authenticated npm install ends with the flags that outrank a project .npmrc (proxy, git programs)', () => {
    const [install, ...scripts] = planPackageInstall(['npm', 'install', 'left-pad', '--proxy=http://127.0.0.1:9'], npm);
    expect(install?.command.slice(-NPM_CREDENTIAL_FLAGS.length)).toEqual(NPM_CREDENTIAL_FLAGS);
    expect(install?.credential).toBe(npm);
    // The scripts that follow hold no credential, so they need no hardening.
    expect(scripts.every((s) => s.credential === undefined)).toBe(true);
  });

  it('flags already present are not repeated', () => {
    const [install] = planPackageInstall(['npm', 'ci', ...NPM_CREDENTIAL_FLAGS], npm);
    expect(install?.command.filter((a) => a === '--no-proxy')).toHaveLength(1);
  });

  it('the install phase allows only a fresh clone (or ls-remote) with a git credential', () => {
    const installOnly = new Set(['clone', 'ls-remote']);
    expect(() => assertGitCommand('GIT_TOKEN', ['git', 'clone', 'https://example.com/r.git'], installOnly)).not.toThrow();
    for (const sub of ['fetch', 'push']) {
      expect(() => assertGitCommand('GIT_TOKEN', ['git', sub, 'origin'], installOnly)).toThrow(/not an operation the git channel serves here/);
    }
    expect(() => assertGitCommand('GIT_TOKEN', ['git', 'push', 'origin'])).not.toThrow();
  });

  it('a credentialed install clone works only in its private directory: no global options, absolute paths, ~ or ..', () => {
    for (const command of [
      ['git', 'clone', 'https://example.com/r.git'],
      ['git', 'clone', '--quiet', '--depth', '1', '--branch', 'main', '--', 'https://example.com/org/r.git', 'vendor/r'],
      ['git', 'ls-remote', 'https://example.com/r.git'],
    ])
      expect(() => assertPrivateGitCommand('GIT_TOKEN', command), command.join(' ')).not.toThrow();
    for (const command of [
      ['git', '-C', '/workspace', 'clone', 'https://example.com/r.git'],
      ['git', '--git-dir=.git', 'ls-remote', 'origin'],
      ['git', 'clone', 'https://example.com/r.git', '/workspace/r'],
      ['git', 'clone', 'https://example.com/r.git', '../r'],
      ['git', 'clone', 'https://example.com/r.git', 'a/../../r'],
      ['git', 'clone', 'https://example.com/r.git', '~/r'],
      ['git', 'clone', '--reference=/workspace/other', 'https://example.com/r.git'],
      ['git', 'clone', '--separate-git-dir', 'g', 'https://example.com/r.git'],
      ['git', 'clone', 'https://example.com/org/../r.git'],
    ])
      expect(() => assertPrivateGitCommand('GIT_TOKEN', command), command.join(' ')).toThrow(ChannelRequestError);
  });
});
