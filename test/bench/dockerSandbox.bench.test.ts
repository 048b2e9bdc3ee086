import { performance } from 'node:perf_hooks';
import { afterAll, expect, it } from 'vitest';
import { DockerSandboxHost } from '../../infra/sandbox/docker/dockerSandboxHost';
import { LocalProcessSandboxHost } from '../../infra/sandbox/localProcessSandboxHost';
import type { SandboxHost } from '../../domain/ports/sandboxHost';
import { createRedactor } from '../../domain/redaction';
import { dockerForTests, sandboxImageForTests, testScope, removeScope } from '../support/dockerEngine';
import { FigureSink } from './support/figures';
import { quantile } from './support/timing';

/**
 * A sandbox's life on each host at 1, 4 and 16 at once: create (container start, doors ready), a first
 * process (`node -e`, through the relay and the value-free exec for Docker), teardown. Reported, no target.
 */
const sink = new FigureSink('dockerSandbox');
const CONCURRENCY = [1, 4, 16] as const;
const ROUNDS = 2;
const engine = dockerForTests();
const scope = testScope(__filename);
const redactor = createRedactor([]);
const guard = { secretNames: [], managedValues: [] };

async function lifeOf(host: SandboxHost, runId: string): Promise<{ create: number; exec: number; teardown: number }> {
  let at = performance.now();
  const handle = await host.create({ runId, files: { 'a.txt': 'x' }, redactor, guard });
  const create = performance.now() - at;
  at = performance.now();
  const result = await host.exec(handle, { argv: ['node', '-e', 'console.log(1)'], identity: 'agent' });
  const exec = performance.now() - at;
  expect(result.stdout).toBe('1\n');
  at = performance.now();
  await host.teardown(handle);
  return { create, exec, teardown: performance.now() - at };
}

async function measure(name: string, host: SandboxHost): Promise<void> {
  for (const n of CONCURRENCY) {
    const samples: Array<{ create: number; exec: number; teardown: number }> = [];
    const started = performance.now();
    for (let round = 0; round < ROUNDS; round++)
      samples.push(...(await Promise.all(Array.from({ length: n }, (_, i) => lifeOf(host, `bench-${n}-${round}-${i}`)))));
    const perMinute = (samples.length / (performance.now() - started)) * 60_000;
    for (const part of ['create', 'exec', 'teardown'] as const)
      sink.add({ name: `sandbox.${name}.c${n}.${part}P50Ms`, value: Math.round(quantile(samples.map((s) => s[part]), 0.5)), unit: 'ms' });
    sink.add({ name: `sandbox.${name}.c${n}.sandboxesPerMinute`, value: Math.round(perMinute), unit: '/min' });
  }
}

afterAll(async () => {
  if (engine) await removeScope(engine.docker, scope);
});

it('local-process and docker: create, first process and teardown at 1, 4 and 16 at once', async () => {
  await measure('localProcess', await LocalProcessSandboxHost.open({ warn: () => undefined }));
  if (!engine) {
    sink.add({ name: 'sandbox.docker.c1.createP50Ms', value: null, unit: 'ms', unavailable: 'no Docker engine answers at DOCKER_HOST' });
    return;
  }
  await measure('docker', await DockerSandboxHost.open({ docker: engine.docker, socketPath: engine.socketPath, image: await sandboxImageForTests(engine.docker), scope }));
});
