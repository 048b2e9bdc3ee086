import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardPolicy } from '../../../domain/launchGuard';
import { LocalProcessSandboxHost } from '../../../infra/sandbox/localProcessSandboxHost';
import { sessionArgv } from '../../../infra/sandbox/remote/agentSshServer';
import { redactorFor } from './sandboxTestKit';

/**
 * stdin of a running process on the local-process host, beyond the contract's case: the input is pulled only as
 * the process takes it, and an isolated sandbox has pseudo-terminals of its own (an IDE SSH shell's).
 */
const guard: GuardPolicy = { secretNames: [], managedValues: [] };
const isRoot = process.getuid?.() === 0;
let root: string;
let host: LocalProcessSandboxHost;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'dp-input-'));
  host = await LocalProcessSandboxHost.open({ root });
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('process input on the local-process host', () => {
  it('is pulled only as the process reads: a process that stops reading holds an endless input back', async () => {
    const sandbox = await host.create({ runId: 'input-1', files: {}, redactor: redactorFor([]), guard });
    try {
      const CHUNK = 64 * 1024;
      let pulled = 0;
      let released = false;
      async function* endless(): AsyncGenerator<Uint8Array> {
        try {
          for (;;) {
            pulled += 1;
            yield new Uint8Array(CHUNK).fill(0x61);
          }
        } finally {
          released = true;
        }
      }
      let output = '';
      const reader = await host.start(sandbox, {
        argv: ['sh', '-c', 'head -c 1000 >/dev/null; echo ready; exec sleep 120'], identity: 'agent', stdin: endless(),
        onOutput: (_stream, text) => (output += text),
      });
      await until(() => output.includes('ready'), 'the process to stop reading');
      // However long it is given, the input does not run ahead of the pipe (64 KiB) by more than a few chunks.
      let seen = -1;
      for (let i = 0; i < 40 && seen !== pulled; i++) {
        seen = pulled;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(pulled * CHUNK).toBeLessThan(1024 * 1024);
      await reader.stop();
      await until(() => released, 'the input to be told the process is gone');
    } finally {
      await host.teardown(sandbox);
    }
  }, 60_000);

  it.runIf(isRoot)('gives an isolated sandbox pseudo-terminals of its own, sized as an SSH client asked', async () => {
    const sandbox = await host.create({ runId: 'input-2', files: {}, redactor: redactorFor([]), guard });
    try {
      expect(sandbox.isolated).toBe(true);
      async function* none(): AsyncGenerator<string> {}
      const result = await host.exec(sandbox, { argv: sessionArgv('tty; stty size; ls /dev/pts', { term: 'xterm', rows: 30, cols: 100 }), identity: 'agent', stdin: none(), timeoutMs: 30_000 });
      expect(result.exitCode, result.stderr + result.stdout).toBe(0);
      const lines = result.stdout.split(/\r?\n/);
      // A devpts instance of the sandbox's own: its first terminal, and none of the machine's others.
      expect(lines[0]).toBe('/dev/pts/0');
      expect(lines[1]).toBe('30 100');
      expect(lines.slice(2).join(' ').trim().split(/\s+/).sort()).toEqual(['0', 'ptmx']);
    } finally {
      await host.teardown(sandbox);
    }
  }, 60_000);
});
