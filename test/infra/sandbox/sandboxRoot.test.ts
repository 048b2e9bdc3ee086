import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import type { SandboxHandle } from '../../../domain/ports/sandboxHost';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { findProjectRoot } from '../../../infra/system/projectRoot';
import { redactorFor } from './sandboxTestKit';

/**
 * The sandbox's own root, attacked from inside as the agent: world-readable host files (the checkout, a
 * dev-storage folder, the host's /tmp and /dev/shm) are not there to read, another sandbox's /tmp and
 * /dev/shm are not shared, and the root itself cannot be written.
 */
const node = process.execPath;
const isRoot = process.getuid?.() === 0;
const guard: GuardPolicy = { secretNames: [], managedValues: [] };
const redactor = redactorFor([]);
const marker = `dp-host-only-${randomBytes(6).toString('hex')}`;
const projectRoot = findProjectRoot(__dirname);
const planted = {
  // World-readable, as Azurite leaves its files: the mode must not be what keeps them out.
  azuriteLike: path.join(os.tmpdir(), `${marker}-azurite`, '__azurite_db_table__.json'),
  hostTmp: path.join(os.tmpdir(), `${marker}.txt`),
  hostShm: path.join('/dev/shm', `${marker}.txt`),
};

/** Reads each path from inside the sandbox: its content, or the error code. */
const PROBE = `const fs=require('fs');const out={};for(const p of JSON.parse(process.argv[1])){try{out[p]=fs.statSync(p).isDirectory()?fs.readdirSync(p):fs.readFileSync(p,'utf8')}catch(e){out[p]=e.code}}console.log(JSON.stringify(out))`;

describe("a sandbox's own root", () => {
  let host: LocalProcessSandboxHost;
  let a: SandboxHandle;
  let b: SandboxHandle;
  const probe = async (sandbox: SandboxHandle, paths: string[]): Promise<Record<string, unknown>> => {
    const result = await host.exec(sandbox, { argv: [node, '-e', PROBE, JSON.stringify(paths)], identity: 'agent' });
    expect(result.exitCode, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  };

  beforeAll(async () => {
    mkdirSync(path.dirname(planted.azuriteLike), { mode: 0o755 });
    for (const file of Object.values(planted)) {
      writeFileSync(file, marker);
      chmodSync(file, 0o644);
    }
    host = await LocalProcessSandboxHost.open({ warn: () => undefined });
    a = await host.create({ runId: 'root-a', files: { 'hello.txt': 'hello' }, redactor, guard });
    b = await host.create({ runId: 'root-b', files: {}, redactor, guard });
  });
  afterAll(async () => {
    await host.teardown(a);
    await host.teardown(b);
    rmSync(path.dirname(planted.azuriteLike), { recursive: true, force: true });
    rmSync(planted.hostTmp, { force: true });
    rmSync(planted.hostShm, { force: true });
  });

  it('holds no project checkout, no dev storage and nothing of the host /tmp or /dev/shm, yet its workspace works', async () => {
    const seen = await probe(a, [projectRoot, path.join(projectRoot, 'package.json'), path.join(projectRoot, '.azurite'), ...Object.values(planted), path.join(a.workspace, 'hello.txt')]);
    expect(seen[path.join(a.workspace, 'hello.txt')]).toBe('hello');
    if (!isRoot) {
      // The control, and why a host without isolation records IsolationDegraded: everything is in reach.
      expect(seen[planted.hostTmp]).toBe(marker);
      return;
    }
    for (const p of [projectRoot, path.join(projectRoot, 'package.json'), path.join(projectRoot, '.azurite'), ...Object.values(planted)]) expect(seen[p], p).toBe('ENOENT');
    expect(JSON.stringify(Object.values(seen))).not.toContain(marker);
  });

  it('gives every sandbox its own /tmp and /dev/shm, and a root nobody inside can write', async () => {
    const write = `const fs=require('fs');const r={};for(const p of ['/tmp/mine','/dev/shm/mine','/planted','/usr/planted','/etc/planted']){try{fs.writeFileSync(p,process.argv[1]);r[p]='written'}catch(e){r[p]=e.code}}console.log(JSON.stringify(r))`;
    const wrote = await host.exec(a, { argv: [node, '-e', write, marker], identity: 'agent' });
    const written = JSON.parse(wrote.stdout) as Record<string, string>;
    expect(written['/tmp/mine']).toBe('written');
    expect(written['/dev/shm/mine']).toBe('written');
    const fromB = await probe(b, ['/tmp/mine', '/dev/shm/mine', a.workspace]);
    if (!isRoot) return;
    for (const p of ['/planted', '/usr/planted', '/etc/planted']) expect(['EROFS', 'EACCES']).toContain(written[p]);
    expect(fromB['/tmp/mine']).toBe('ENOENT');
    expect(fromB['/dev/shm/mine']).toBe('ENOENT');
    expect(fromB[a.workspace]).toBe('ENOENT');
    expect((await probe(a, ['/tmp/mine']))['/tmp/mine']).toBe(marker);
  });
});
