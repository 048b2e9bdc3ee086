import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import type { SandboxHandle } from '../../../domain/ports/sandboxHost';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { aSecretValue, envDelivery, fixture, npmConfigDelivery, redactorFor, tempFileDelivery, waitForFile } from './sandboxTestKit';

const node = process.execPath;
const isRoot = process.getuid?.() === 0;
const secrets = {
  MODEL_KEY: aSecretValue('sk'),
  TRACKER_KEY: aSecretValue('mcp'),
  DEPLOY_KEY: aSecretValue('op'),
  NPM_TOKEN: aSecretValue('npm'),
  OTHER_SANDBOX_KEY: aSecretValue('other'),
};
const managed = Object.entries(secrets).map(([name, value]) => ({ name, value }));
const guard: GuardPolicy = { secretNames: Object.keys(secrets), managedValues: managed };
const files = { 'hunt.js': fixture('hunt.js'), 'holder.js': fixture('holder.js') };
const holderArgs = (config: object): string[] => [node, 'holder.js', JSON.stringify(config)];

describe('a hostile agent inside an isolated sandbox', () => {
  let host: LocalProcessSandboxHost;
  let sandbox: SandboxHandle;
  let neighbour: SandboxHandle;
  beforeAll(async () => {
    host = await LocalProcessSandboxHost.open({ warn: () => undefined });
  });
  afterAll(async () => {
    if (sandbox) await host.teardown(sandbox);
    if (neighbour) await host.teardown(neighbour);
  });

  it('runs isolated on this machine when root, and says why not otherwise', () => {
    expect(host.capabilities.isolated).toBe(isRoot);
    if (!isRoot) expect(host.capabilities.reason).toMatch(/root/);
  });

  it('gets no managed value but its own model key, while an MCP server and an operation hold theirs', async () => {
    const redactor = redactorFor(managed);
    sandbox = await host.create({ runId: 'hostile', files, redactor, guard, env: { LOG_LEVEL: 'debug' } });
    neighbour = await host.create({ runId: 'neighbour', files, redactor, guard });
    const ws = (f: string): string => path.join(sandbox.workspace, f);

    // Another sandbox on the same host, with a server holding its own key.
    const other = await host.start(neighbour, {
      argv: holderArgs({ envName: 'OTHER_KEY', readyFile: 'other.ready' }),
      identity: 'credential',
      credentials: async () => [envDelivery('OTHER_KEY', secrets.OTHER_SANDBOX_KEY)],
    });
    expect(await waitForFile(path.join(neighbour.workspace, 'other.ready'))).toBe('has-credential');

    // An MCP server with a process-env credential, for its lifetime.
    const mcp = await host.start(sandbox, {
      argv: holderArgs({ envName: 'TRACKER_KEY', readyFile: 'mcp.ready' }),
      identity: 'credential',
      credentials: async () => [envDelivery('TRACKER_KEY', secrets.TRACKER_KEY)],
    });
    expect(await waitForFile(ws('mcp.ready'))).toBe('has-credential');

    // An operation with a 0600 temp-file credential and an npm config file, held until we release it.
    let opFiles: string[] = [];
    let opDir = '';
    const op = await host.start(sandbox, {
      argv: holderArgs({ fileEnv: 'DEPLOY_KEY_FILE', readyFile: 'op.ready', untilFile: 'release' }),
      identity: 'credential',
      credentials: async (target) => {
        opDir = target.credentialDir;
        const deliveries = [await tempFileDelivery(target, 'DEPLOY_KEY_FILE', secrets.DEPLOY_KEY), await npmConfigDelivery(target, secrets.NPM_TOKEN)];
        opFiles = deliveries.flatMap((d) => [...d.paths]);
        return deliveries;
      },
    });
    expect(await waitForFile(ws('op.ready'))).toBe('has-credential');

    const inspection = host.inspect(sandbox);
    const hunt = await host.exec(sandbox, {
      argv: [
        node,
        'hunt.js',
        JSON.stringify({
          files: [...opFiles, path.join(opDir, '.npmrc'), path.join(opDir, '.gitconfig')],
          dirs: [path.dirname(inspection.credentialDir), inspection.credentialDir, opDir, host.inspect(neighbour).credentialDir, neighbour.workspace, path.dirname(inspection.root)],
          lootFile: 'loot.txt',
          raceAttempts: 300,
        }),
      ],
      identity: 'agent',
      credentials: async () => [envDelivery('OPENAI_API_KEY', secrets.MODEL_KEY)],
      timeoutMs: 120_000,
    });
    expect(hunt.exitCode).toBe(0);
    const stats = JSON.parse(hunt.stdout) as { reads: number; denied: number; raceAttempts: number; raceOpened: number; pidsSeen: number[] };
    // The credential files existed for the whole hunt: the race really raced.
    expect(opFiles.length).toBe(2);
    for (const file of opFiles) expect(existsSync(file)).toBe(true);

    const loot = readFileSync(ws('loot.txt'), 'latin1');
    // Positive control: the hunt reads what it may read, including its own environ with its own lease.
    expect(loot).toContain(secrets.MODEL_KEY);
    expect(stats.reads).toBeGreaterThan(500);
    expect(stats.raceAttempts).toBe(300);
    // The attack: nothing of anyone else's, in any encoding the redactor knows.
    expect(stats.raceOpened).toBe(0);
    for (const name of ['TRACKER_KEY', 'DEPLOY_KEY', 'NPM_TOKEN', 'OTHER_SANDBOX_KEY'] as const) expect(loot.includes(secrets[name]), name).toBe(false);
    const others = redactorFor(managed.filter((m) => m.name !== 'MODEL_KEY'));
    expect(others.matches(loot)).toBe(false);
    // hidepid: the agent sees only its own processes, none of the credential holders.
    expect(stats.pidsSeen.length).toBeLessThanOrEqual(2);

    writeFileSync(ws('release'), 'go');
    expect((await op.exited).exitCode).toBe(0);
    for (const file of opFiles) expect(existsSync(file)).toBe(false);
    await mcp.stop();
    await other.stop();
  });
});

describe('the same hunt without isolation (the control)', () => {
  it('does find an MCP server key, which is why a degraded host records IsolationDegraded', async () => {
    const host = await LocalProcessSandboxHost.open({ isolation: 'off', warn: () => undefined });
    expect(host.capabilities).toMatchObject({ isolated: false });
    const redactor = redactorFor(managed);
    const sandbox = await host.create({ runId: 'control', files, redactor, guard });
    try {
      const mcp = await host.start(sandbox, {
        argv: holderArgs({ envName: 'TRACKER_KEY', readyFile: 'mcp.ready' }),
        identity: 'credential',
        credentials: async () => [envDelivery('TRACKER_KEY', secrets.TRACKER_KEY)],
      });
      await waitForFile(path.join(sandbox.workspace, 'mcp.ready'));
      const hunt = await host.exec(sandbox, { argv: [node, 'hunt.js', JSON.stringify({ lootFile: 'loot.txt', raceAttempts: 1, fds: false })], identity: 'agent' });
      expect(hunt.exitCode).toBe(0);
      expect(readFileSync(path.join(sandbox.workspace, 'loot.txt'), 'latin1')).toContain(secrets.TRACKER_KEY);
      // Output still passes the redactor: the key never reaches the result.
      expect(hunt.stdout).not.toContain(secrets.TRACKER_KEY);
      await mcp.stop();
    } finally {
      await host.teardown(sandbox);
    }
  });
});
