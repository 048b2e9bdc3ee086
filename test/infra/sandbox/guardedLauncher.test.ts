import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import type { CredentialDelivery } from '../../../infra/sandbox/credentialDelivery';
import { GuardedLauncher, type LaunchRequest } from '../../../infra/sandbox/guardedLauncher';
import { DeliveryConflictError, LaunchRefusedError } from '../../../infra/sandbox/launchErrors';
import { TICKET_ENV, TicketRegistry } from '../../../infra/sandbox/launchTickets';
import { aSecretValue, envDelivery, isAlive, redactorFor, waitForFile } from './sandboxTestKit';
import { spySpawns } from './spawnSpy';

const node = process.execPath;
const TOKEN = aSecretValue('ghp');
const TRACKER = aSecretValue('trk');
const managed = [
  { name: 'DEPLOY_TOKEN', value: TOKEN },
  { name: 'TRACKER_KEY', value: TRACKER },
];
const guard: GuardPolicy = { secretNames: managed.map((m) => m.name), managedValues: managed };
const redactor = redactorFor(managed);
const dir = mkdtempSync(path.join(os.tmpdir(), 'launcher-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let tickets: TicketRegistry;
let launcher: GuardedLauncher;
beforeEach(() => {
  tickets = new TicketRegistry();
  launcher = new GuardedLauncher(tickets);
});

/** A script that holds a managed value runs from a file: in argv the guard would refuse it (and every process could read it). */
function scriptFile(name: string, source: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, source);
  return file;
}

function aLaunch(overrides: Partial<LaunchRequest> = {}): LaunchRequest {
  return { argv: [node, '-e', 'process.stdout.write("hi")'], standingEnv: { PATH: process.env.PATH ?? '/usr/bin' }, guard, cwd: dir, redactor, ...overrides };
}

describe('the guard at launch', () => {
  let spy: ReturnType<typeof spySpawns>;
  beforeEach(() => (spy = spySpawns()));
  afterEach(() => spy.restore());

  const refusals: [string, Record<string, string>, string][] = [
    ['a secret name', { TRACKER_KEY: 'whatever' }, 'TRACKER_KEY'],
    ['a well-known provider key name', { GITHUB_TOKEN: 'whatever' }, 'GITHUB_TOKEN'],
    ['a managed value', { HARMLESS: TOKEN }, 'HARMLESS'],
    ['a base64-encoded managed value', { AUTH: `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}` }, 'AUTH'],
    ['a URL with the token inside', { REPO: `https://x:${TOKEN}@github.com/o/r.git` }, 'REPO'],
  ];
  for (const [what, env, key] of refusals) {
    it(`refuses ${what}, naming the key, never the value, and spawns nothing`, async () => {
      let prepared = false;
      const error = await launcher
        .start(aLaunch({ standingEnv: { LOG_LEVEL: 'debug', ...env }, deliveries: async () => ((prepared = true), []) }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LaunchRefusedError);
      const refusal = error as LaunchRefusedError;
      expect(refusal.offendingKey).toBe(key);
      expect(refusal.message).toContain(key);
      const visible = `${refusal.message} ${JSON.stringify(refusal)} ${String(refusal.stack)}`;
      expect(visible).not.toContain(TOKEN);
      expect(redactor.matches(visible)).toBe(false);
      expect(prepared).toBe(false);
      expect(tickets.issuedCount).toBe(0);
      expect(spy.calls).toEqual([]);
    });
  }

  it('refuses a managed value in argv, raw or encoded, naming the argument, and spawns nothing', async () => {
    for (const arg of [TOKEN, `--auth=${Buffer.from(TOKEN).toString('base64')}`]) {
      const error = await launcher.start(aLaunch({ argv: [node, '-e', '1', arg] })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LaunchRefusedError);
      expect((error as LaunchRefusedError).offendingKey).toBe('argv[3]');
      expect((error as LaunchRefusedError).secretName).toBe('DEPLOY_TOKEN');
      expect((error as Error).message).toMatch(/^argv\[3\] is refused/);
      expect(redactor.matches(`${(error as Error).message} ${String((error as Error).stack)}`)).toBe(false);
    }
    expect(tickets.issuedCount).toBe(0);
    expect(spy.calls).toEqual([]);
  });

  it('cleans up deliveries it was handed when it refuses', async () => {
    const delivery = envDelivery('TRACKER_KEY', TRACKER);
    await expect(launcher.start(aLaunch({ standingEnv: { X: TOKEN }, deliveries: [delivery] }))).rejects.toBeInstanceOf(LaunchRefusedError);
    expect(delivery.cleaned()).toBe(true);
    expect(spy.calls).toEqual([]);
  });

  it('refuses a delivery that would override the standing env or the ticket, spawning nothing', async () => {
    for (const key of ['PATH', TICKET_ENV]) {
      const delivery = envDelivery(key, 'x');
      await expect(launcher.start(aLaunch({ deliveries: [delivery] }))).rejects.toBeInstanceOf(DeliveryConflictError);
      expect(delivery.cleaned()).toBe(true);
    }
    expect(spy.calls).toEqual([]);
    expect(tickets.issuedCount).toBe(0);
  });

  it('spawns with a live ticket once the guard passed, and retires it at exit', async () => {
    const result = await launcher.run(aLaunch({ argv: [node, '-e', `process.stdout.write(process.env.${TICKET_ENV})`] }));
    expect(spy.calls).toHaveLength(1);
    const ticket = spy.calls[0]?.env?.[TICKET_ENV] ?? '';
    expect(ticket).toMatch(/^[0-9a-f]{32}$/);
    expect(result.stdout).toBe(ticket);
    expect(tickets.wasIssued(ticket)).toBe(true);
    expect(tickets.isActive(ticket)).toBe(false);
  });
});

describe('deliveries', () => {
  it('reach only the process they were given to, after the guard, and are cleaned up when it exits', async () => {
    let cleaned = false;
    const delivery: CredentialDelivery = {
      env: { TRACKER_KEY: TRACKER },
      argsAfterCommand: ['--no-warnings'],
      stdin: 'from-stdin',
      paths: [],
      cleanup: async () => void (cleaned = true),
    };
    const script = scriptFile('deliveries.js', `let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify({k:process.env.TRACKER_KEY===${JSON.stringify(TRACKER)},argv:process.execArgv,s})))`);
    const result = await launcher.run(aLaunch({ argv: [node, script], deliveries: [delivery] }));
    expect(JSON.parse(result.stdout)).toEqual({ k: true, argv: expect.arrayContaining(['--no-warnings']), s: 'from-stdin' });
    expect(cleaned).toBe(true);
    const next = await launcher.run(aLaunch({ argv: [node, '-e', 'process.stdout.write(String(process.env.TRACKER_KEY))'] }));
    expect(next.stdout).toBe('undefined');
  });
});

describe('output', () => {
  it('is redacted, even across chunk boundaries, before it is returned', async () => {
    const half = Math.floor(TOKEN.length / 2);
    const script = `process.stdout.write(${JSON.stringify(TOKEN.slice(0, half))});setTimeout(()=>{process.stdout.write(${JSON.stringify(TOKEN.slice(half))});console.error(${JSON.stringify(TRACKER)})},50)`;
    const result = await launcher.run(aLaunch({ argv: [node, scriptFile('chunks.js', script)] }));
    expect(result.stdout).toBe('[REDACTED:DEPLOY_TOKEN]');
    expect(result.stderr).toBe('[REDACTED:TRACKER_KEY]\n');
  });

  it('is truncated only after redaction, so a cut never exposes part of a value', async () => {
    const script = `process.stdout.write("x".repeat(10)+${JSON.stringify(TOKEN)}+"y".repeat(1000))`;
    const result = await launcher.run(aLaunch({ argv: [node, scriptFile('truncated.js', script)], maxOutputBytes: 18 }));
    expect(result.truncated).toBe(true);
    expect(result.stdout).toBe(`${'x'.repeat(10)}[REDACTE`);
    expect(result.stdout).not.toContain(TOKEN.slice(0, 4));
  });
});

describe('limits', () => {
  const groupScript = (name: string): string[] => ['/bin/sh', '-c', `sleep 600 & echo $! > ${name}; sleep 600`];

  it('a time limit kills the whole process group', async () => {
    const pidFile = path.join(dir, 'timeout.pid');
    const result = await launcher.run(aLaunch({ argv: groupScript(pidFile), timeoutMs: 500 }));
    expect(result.timedOut).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(isAlive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
  });

  it('cancellation kills the whole process group', async () => {
    const pidFile = path.join(dir, 'cancel.pid');
    const controller = new AbortController();
    const running = await launcher.start(aLaunch({ argv: groupScript(pidFile), signal: controller.signal }));
    const childPid = Number(await waitForFile(pidFile));
    expect(isAlive(childPid)).toBe(true);
    controller.abort();
    const result = await running.exited;
    expect(result.cancelled).toBe(true);
    expect(isAlive(childPid)).toBe(false);
    expect(isAlive(running.pid)).toBe(false);
  });

  it('an already cancelled launch spawns nothing', async () => {
    const spy = spySpawns();
    try {
      const controller = new AbortController();
      controller.abort();
      let prepared = false;
      const result = await launcher.run(aLaunch({ signal: controller.signal, deliveries: async () => ((prepared = true), []) }));
      expect(result.cancelled).toBe(true);
      expect(prepared).toBe(false);
      expect(spy.calls).toEqual([]);
    } finally {
      spy.restore();
    }
  });

  // The group's number is free once the group is gone, and on a busy machine (pid_max 32768 here) the kernel
  // soon hands it to another process, often one that leads a group of its own (every sandbox process does). A
  // stop that comes after the exit, as a teardown racing the process's end does, must signal nothing.
  it('signals nothing once the group is gone: a late stop cannot hit whatever took its number', async () => {
    const running = await launcher.start(aLaunch({ argv: ['/bin/sh', '-c', 'sleep 600 > /dev/null 2>&1 & exit 0'] }));
    expect((await running.exited).exitCode).toBe(0);
    const kill = vi.spyOn(process, 'kill');
    try {
      await running.stop();
      expect(kill.mock.calls.filter(([pid]) => Math.abs(pid) === running.pid)).toEqual([]);
    } finally {
      kill.mockRestore();
    }
  });

  it('kills what is left of the group when the main process exits', async () => {
    const pidFile = path.join(dir, 'leftover.pid');
    const result = await launcher.run(aLaunch({ argv: ['/bin/sh', '-c', `sleep 600 > /dev/null 2>&1 & echo $! > ${pidFile}`] }));
    expect(result.exitCode).toBe(0);
    expect(existsSync(pidFile)).toBe(true);
    expect(isAlive(Number(readFileSync(pidFile, 'utf8')))).toBe(false);
  });
});
