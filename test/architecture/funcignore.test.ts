import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `.funcignore` uses gitignore syntax, so real git decides what it leaves out: the file alone as the only
 * exclude source of an empty repository, asked about each path with `check-ignore --no-index`.
 */
const scratch = mkdtempSync(path.join(tmpdir(), 'dp-funcignore-'));
copyFileSync(path.join(__dirname, '..', '..', '.funcignore'), path.join(scratch, '.gitignore'));
execFileSync('git', ['init', '--quiet', scratch], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' } });
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function ignored(file: string): boolean {
  try {
    execFileSync('git', ['check-ignore', '--quiet', '--no-index', '--', file], {
      cwd: scratch,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
    });
    return true;
  } catch (error) {
    if ((error as { status?: number }).status === 1) return false;
    throw error;
  }
}

describe('.funcignore: a publish from a developer checkout', () => {
  it('never uploads local state: Azurite data (its key and every workspace), local settings, logs', () => {
    for (const file of [
      '.azurite/__azurite_db_table__.json',
      '.azurite/__blobstorage__/0a1b',
      '__azurite_db_queue__.json',
      '__blobstorage__/x',
      'local.settings.json',
      'local.settings.prod.json',
      'host.log',
      '.planted-1/secret',
      'coverage/index.html',
    ])
      expect(ignored(file), file).toBe(true);
  });

  it('never uploads tests, sources, tooling or version control', () => {
    for (const file of [
      'test/functions/api.test.ts',
      'test/bench/results/latest.json',
      'domain/secret.ts',
      'localhost/devGitServer.ts',
      'functions/index.ts',
      'scripts/start.js',
      'docs/deploy.md',
      '.git/config',
      '.ci/run',
      'tsconfig.json',
      'vitest.config.mts',
      'node_modules/azurite/dist/src/azurite.js',
    ])
      expect(ignored(file), file).toBe(true);
  });

  it('keeps what the app runs from', () => {
    for (const file of ['dist/functions/index.js', 'dist/domain/secret.js', 'host.json', 'package.json', 'node_modules/zod/package.json', 'node_modules/@azure/functions/package.json'])
      expect(ignored(file), file).toBe(false);
  });
});
