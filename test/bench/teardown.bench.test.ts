import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import type * as RedactionModule from '../../domain/redaction';
import type * as HostModule from '../../infra/sandbox/localProcessSandboxHost';
import { fromDist } from './support/dist';
import { FigureSink } from './support/figures';
import { quantile } from './support/timing';

/**
 * Sandbox teardown as a run's teardown phase does it: stop the MCP server (a long-lived child), then tear the
 * sandbox down (its pid namespace, doors, disk). ROUNDS sandboxes one after another; p50 and p99.
 */
const ROUNDS = 15;
const MCP_SERVER = ['node', '-e', "console.log('mcp up'); setInterval(() => {}, 1000)"];

const { LocalProcessSandboxHost } = fromDist<typeof HostModule>('infra/sandbox/localProcessSandboxHost.js');
const { createRedactor } = fromDist<typeof RedactionModule>('domain/redaction.js');
const sink = new FigureSink('teardown');

describe('sandbox teardown', () => {
  it(`stops an MCP-like server and tears the sandbox down, ${ROUNDS} times`, async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'dp-bench-teardown-'));
    const host = await LocalProcessSandboxHost.open({ root, isolation: 'auto', warn: () => undefined });
    try {
      if (!host.capabilities.isolated) {
        for (const name of ['sandbox.teardown.withMcpServer.p50Ms', 'sandbox.teardown.mcpServerRunning.p50Ms'])
          sink.add({ name, value: null, unit: 'ms', unavailable: 'no pid namespaces here (needs root and unshare)' });
        return;
      }
      const redactor = createRedactor([]);
      const stopped: number[] = [];
      const running: number[] = [];
      for (let i = 0; i < 2 * ROUNDS; i++) {
        const sandbox = await host.create({ runId: `teardown-${i}`, files: {}, redactor, guard: { secretNames: [], managedValues: [] } });
        const server = await host.start(sandbox, { argv: MCP_SERVER, identity: 'credential' });
        await new Promise((resolve) => setTimeout(resolve, 100));
        const start = performance.now();
        // Even rounds as the run's teardown phase: the server stopped first, then the sandbox.
        if (i % 2 === 0) await server.stop();
        await host.teardown(sandbox);
        (i % 2 === 0 ? stopped : running).push(performance.now() - start);
        expect((await server.exited).exitCode).not.toBe(0);
      }
      sink.add({
        name: 'sandbox.teardown.withMcpServer.p50Ms', value: quantile(stopped, 0.5), unit: 'ms', targets: [{ on: 'value', max: 100 }],
        note: `stop the server, then host.teardown (pid namespace, doors, disk); p99 ${quantile(stopped, 0.99).toFixed(0)} ms over ${ROUNDS}`,
      });
      sink.add({
        name: 'sandbox.teardown.mcpServerRunning.p50Ms', value: quantile(running, 0.5), unit: 'ms',
        note: `host.teardown with the server still running (killing the init takes it down); p99 ${quantile(running, 0.99).toFixed(0)} ms`,
      });
      sink.add({ name: 'sandbox.teardown.docker.p50Ms', value: null, unit: 'ms', unavailable: 'the Docker host is measured in its own branch' });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
