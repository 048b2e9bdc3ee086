import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import type { SandboxHost } from '../../domain/ports/sandboxHost';
import type * as RedactionModule from '../../domain/redaction';
import type * as DockerHostModule from '../../infra/sandbox/docker/dockerSandboxHost';
import type * as HostModule from '../../infra/sandbox/localProcessSandboxHost';
import { dockerForTests, removeScope, sandboxImageForTests, testScope } from '../support/dockerEngine';
import { fromDist } from './support/dist';
import { FigureSink } from './support/figures';
import { quantile } from './support/timing';

/**
 * Sandbox teardown as a run's teardown phase does it: stop the MCP server (a long-lived child), then tear the
 * sandbox down (its pid namespace or container, doors, disk). Sandboxes one after another; p50 and p99. The
 * local host has a target (<= 100 ms p50); the Docker host's figure is reported beside it, with none.
 */
const ROUNDS = 15;
const DOCKER_ROUNDS = 5;
const MCP_SERVER = ['node', '-e', "console.log('mcp up'); setInterval(() => {}, 1000)"];

const { LocalProcessSandboxHost } = fromDist<typeof HostModule>('infra/sandbox/localProcessSandboxHost.js');
const { DockerSandboxHost } = fromDist<typeof DockerHostModule>('infra/sandbox/docker/dockerSandboxHost.js');
const { createRedactor } = fromDist<typeof RedactionModule>('domain/redaction.js');
const sink = new FigureSink('teardown');
const engine = dockerForTests();

/** Even rounds stop the server first (the run's teardown phase); odd rounds tear down with it still running. */
async function teardowns(host: SandboxHost, rounds: number, prefix: string): Promise<{ stopped: number[]; running: number[] }> {
  const redactor = createRedactor([]);
  const stopped: number[] = [];
  const running: number[] = [];
  for (let i = 0; i < 2 * rounds; i++) {
    const sandbox = await host.create({ runId: `${prefix}-${i}`, files: {}, redactor, guard: { secretNames: [], managedValues: [] } });
    const server = await host.start(sandbox, { argv: MCP_SERVER, identity: 'credential' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const start = performance.now();
    if (i % 2 === 0) await server.stop();
    await host.teardown(sandbox);
    (i % 2 === 0 ? stopped : running).push(performance.now() - start);
    expect((await server.exited).exitCode).not.toBe(0);
  }
  return { stopped, running };
}

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
      const { stopped, running } = await teardowns(host, ROUNDS, 'teardown');
      sink.add({
        name: 'sandbox.teardown.withMcpServer.p50Ms', value: quantile(stopped, 0.5), unit: 'ms', targets: [{ on: 'value', max: 100 }],
        note: `local host: stop the server, then host.teardown (pid namespace, doors, disk); p99 ${quantile(stopped, 0.99).toFixed(0)} ms over ${ROUNDS}`,
      });
      sink.add({
        name: 'sandbox.teardown.mcpServerRunning.p50Ms', value: quantile(running, 0.5), unit: 'ms',
        note: `local host: host.teardown with the server still running (killing the init takes it down); p99 ${quantile(running, 0.99).toFixed(0)} ms`,
      });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it(`the same on the Docker host, ${DOCKER_ROUNDS} times`, async () => {
    if (!engine) {
      sink.add({ name: 'sandbox.teardown.docker.p50Ms', value: null, unit: 'ms', unavailable: 'no Docker engine answers at DOCKER_HOST (or not root)' });
      return;
    }
    const scope = testScope(__filename);
    try {
      const host = await DockerSandboxHost.open({ docker: engine.docker, socketPath: engine.socketPath, image: await sandboxImageForTests(engine.docker), scope });
      const { stopped, running } = await teardowns(host, DOCKER_ROUNDS, 'docker-teardown');
      sink.add({
        name: 'sandbox.teardown.docker.p50Ms', value: quantile(stopped, 0.5), unit: 'ms',
        baseline: { name: 'sandbox.teardown.withMcpServer.p50Ms', value: sink.all().find((f) => f.name === 'sandbox.teardown.withMcpServer.p50Ms')?.value ?? 0 },
        note: `Docker host: stop the server, then host.teardown (container, doors, volume); p99 ${quantile(stopped, 0.99).toFixed(0)} ms over ${DOCKER_ROUNDS}; with the server still running p50 ${quantile(running, 0.5).toFixed(0)} ms`,
      });
    } finally {
      await removeScope(engine.docker, scope);
    }
  }, 600_000);
});
