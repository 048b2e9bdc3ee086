import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, expect, it } from 'vitest';
import { createRedactor } from '../../domain/redaction';
import { webPubSubHostAuthority } from '../../functions/webPubSubHosts.composition';
import { LocalProcessSandboxHost } from '../../infra/sandbox/localProcessSandboxHost';
import { HostAgent } from '../../infra/sandbox/remote/hostAgent';
import { RemoteSandboxHost } from '../../infra/sandbox/remote/remoteSandboxHost';
import { WebPubSubClientSocket } from '../../infra/sandbox/remote/webPubSubClientSocket';
import { createApiHarness } from '../support/apiHarness';
import { openWebPubSubChannel } from '../support/webPubSubChannel';
import { FigureSink } from './support/figures';
import { quantile } from './support/timing';

/**
 * What sharing the host channel's session costs a command's round trip (docs/sandbox-hosts.md, "Several
 * instances"): through the wire-format Web PubSub fake and Azurite, with the agent's answers posted to the
 * instance that sent the command (handed over in memory; the head's change is the only table write) or to
 * another instance (deposited with the head's change, read by the sender's poll). `list` is the channel alone;
 * `exec true` adds a process on the agent. Reported, no target: Azurite on a shared machine is not Azure.
 */
const sink = new FigureSink('hostChannelSessions');
const ROUNDS = 40;
let close: (() => Promise<void>) | undefined;

afterAll(async () => {
  await close?.();
});

it('a command round trip with the answer on the sending instance and on another one', async () => {
  const h = await createApiHarness();
  const alice = await h.issuer.token('alice');
  const ws = ((await h.call('POST', '/api/workspaces', { token: alice, body: { name: 'Bench' } })).json as { id: string }).id;
  const dir = mkdtempSync(path.join(tmpdir(), 'dp-bench-sessions-'));
  const opened = await openWebPubSubChannel(h.deps, dir, { instances: 2 });
  const offer = (await h.call('POST', `/api/workspaces/${ws}/hosts`, { token: alice, body: { name: 'bench-box' } })).json as { hostId: string; enrolmentToken: string };
  const { credential } = await webPubSubHostAuthority(h.deps).enrol(offer.enrolmentToken);
  const state = path.join(dir, 'agent.json');
  writeFileSync(state, JSON.stringify({ credential }), { mode: 0o600 });
  const agent = new HostAgent({
    platform: opened.platformUrl, ca: opened.tls.cert, stateFile: state, inner: await LocalProcessSandboxHost.open({ isolation: 'off' }),
    dial: (current) => new WebPubSubClientSocket(opened.platformUrl, current, opened.tls.cert), log: () => undefined,
  });
  const running = agent.run();
  close = async () => {
    await agent.stop();
    await running;
    await opened.close();
  };
  const sender = opened.instances[0]!;
  while (sender.liveHosts(ws).length === 0) {
    await sender.refresh();
    await new Promise((r) => setTimeout(r, 100));
  }
  const remote = new RemoteSandboxHost(sender);
  const handle = await remote.create({ runId: 'bench-run', files: {}, redactor: createRedactor([]), guard: { secretNames: [], managedValues: [] }, placement: { workspaceId: ws } });
  const connection = sender.liveHosts(ws)[0]!;

  for (const [where, instance] of [['sameInstance', 0], ['otherInstance', 1]] as const) {
    opened.routeTo(({ header }) => (header('ce-type') === 'azure.webpubsub.user.message' ? instance : undefined));
    for (const [what, roundTrip] of [
      ['list', async () => expect((await connection.request({ op: 'list', requestId: randomUUID() })).kind).toBe('listed')],
      ['execTrue', async () => expect((await remote.exec(handle, { argv: ['true'], identity: 'agent' })).exitCode).toBe(0)],
    ] as const) {
      for (let i = 0; i < 5; i++) await roundTrip();
      const samples: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const at = performance.now();
        await roundTrip();
        samples.push(performance.now() - at);
      }
      sink.add({ name: `hostChannel.${where}.${what}P50Ms`, value: Math.round(quantile(samples, 0.5) * 10) / 10, unit: 'ms' });
      sink.add({ name: `hostChannel.${where}.${what}P95Ms`, value: Math.round(quantile(samples, 0.95) * 10) / 10, unit: 'ms' });
    }
  }
  await remote.teardown(handle);
  console.log(JSON.stringify(sink.all().map((f) => [f.name, f.value]), null, 1));
});
