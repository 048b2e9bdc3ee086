import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devIssuerSettings, mintDevToken } from '../../infra/identity/devIssuer';
import { callApi } from '../../localhost/apiCall';
import { azuriteConnectionString, uniqueName } from '../support/azurite';
import { startLocalHost, type LocalHostProcess } from '../support/localHostProcess';
import { FigureSink } from './support/figures';
import { quantile } from './support/timing';

const sink = new FigureSink('runs');
const CONCURRENCY = [1, 4, 16] as const;
/** Runs per configuration: enough for a p99 that is more than the maximum, within the 10-minute budget. */
const RUNS: Record<(typeof CONCURRENCY)[number], number> = { 1: 6, 4: 16, 16: 48 };
const RUN_TIMEOUT_MS = 180_000;

interface RunView {
  status: string;
  phases: { phase: string; status: string }[];
  events: { type: string; at: string; data: Record<string, unknown> }[];
}

/** Five phases of trivial commands: the cost measured is the platform's, not the work's. */
function trivialSpec(withMcpServer = true): Record<string, unknown> {
  return {
    template: { files: { 'agent.js': "console.log('turn done');\n" } },
    env: { LOG_LEVEL: 'info' },
    install: [{ command: ['node', '-e', "console.log('installed')"] }],
    ...(withMcpServer ? { mcp: [{ name: 'noop', command: ['node', '-e', "console.log('mcp up'); setInterval(() => {}, 1000)"] }] } : {}),
    turns: [{ command: ['node', 'agent.js'] }],
    deadlineSeconds: 600,
  };
}

let host: LocalHostProcess | undefined;
let unavailable: string | undefined;
let call: (method: string, route: string, body?: unknown) => Promise<{ status: number; json: unknown; text: string }>;
let ws = '';
let scratch = '';

function hostEnv(): Record<string, string> {
  scratch = mkdtempSync(path.join(tmpdir(), 'bench-runs-'));
  return {
    AzureWebJobsStorage: azuriteConnectionString(),
    DURABLE_TASK_HUB: uniqueName('benchruns'),
    EVENT_LOG_TABLE: uniqueName('benchevents'),
    VAULT_TABLE: uniqueName('benchvault'),
    GATEWAY_BEARER_TABLE: uniqueName('benchbearers'),
    SIGNING_KEY_TABLE: uniqueName('benchkeys'),
    VAULT_MASTER_KEY_FILE: path.join(scratch, 'master.key'),
    DEV_ISSUER_KEY_DIR: path.join(scratch, 'issuer'),
  };
}

/** The run lifecycle is another engineer's work in progress: without it the figures say why, and nothing fails. */
function lifecycleMissing(): string | undefined {
  const root = path.resolve(__dirname, '..', '..');
  for (const file of ['dist/functions/runs.routes.js', 'dist/functions/runLifecycle.orchestrator.js'])
    if (!existsSync(path.join(root, file))) return `${file} is not built (run lifecycle not in this tree)`;
  return undefined;
}

async function oneRun(withMcpServer = true): Promise<{ ms: number; view: RunView }> {
  const start = performance.now();
  const reply = await call('POST', `/api/workspaces/${ws}/runs`, trivialSpec(withMcpServer));
  if (reply.status !== 202) throw new Error(`POST runs answered ${reply.status}: ${reply.text.slice(0, 300)}`);
  const { runId } = reply.json as { runId: string };
  const until = Date.now() + RUN_TIMEOUT_MS;
  while (Date.now() < until) {
    const got = await call('GET', `/api/workspaces/${ws}/runs/${runId}`);
    const view = got.json as RunView | undefined;
    if (got.status === 200 && view && ['Completed', 'Failed', 'Cancelled'].includes(view.status)) return { ms: performance.now() - start, view };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`run ${runId} did not finish within ${RUN_TIMEOUT_MS} ms`);
}

/** Milliseconds between PhaseStarted and its PhaseCompleted/Failed, summed: the time spent in activities. */
function phaseMs(view: RunView): number {
  let total = 0;
  let started: number | undefined;
  for (const e of view.events) {
    if (e.type === 'PhaseStarted') started = Date.parse(e.at);
    else if ((e.type === 'PhaseCompleted' || e.type === 'PhaseFailed') && started !== undefined) {
      total += Date.parse(e.at) - started;
      started = undefined;
    }
  }
  return total;
}

/** Median milliseconds of each phase across runs, in phase order. */
function phaseMedians(views: readonly RunView[]): string {
  const byPhase = new Map<string, number[]>();
  for (const view of views) {
    let started: { phase: string; at: number } | undefined;
    for (const e of view.events) {
      if (e.type === 'PhaseStarted') started = { phase: String(e.data['phase']), at: Date.parse(e.at) };
      else if ((e.type === 'PhaseCompleted' || e.type === 'PhaseFailed') && started) {
        byPhase.set(started.phase, [...(byPhase.get(started.phase) ?? []), Date.parse(e.at) - started.at]);
        started = undefined;
      }
    }
  }
  return [...byPhase].map(([phase, ms]) => `${phase} ${quantile(ms, 0.5).toFixed(0)}`).join(', ');
}

/** Peak resident set of the host process so far (VmHWM), in MiB. */
function peakRssMiB(pid: number): number | undefined {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}

beforeAll(async () => {
  unavailable = lifecycleMissing();
  if (unavailable) return;
  try {
    const env = hostEnv();
    host = await startLocalHost({ env });
    const token = await mintDevToken('bench', devIssuerSettings({ DEV_ISSUER_KEY_DIR: env.DEV_ISSUER_KEY_DIR }));
    const base = host.url;
    call = (method, route, body) => callApi(base, token, method, route, body);
    const created = await call('POST', '/api/workspaces', { name: 'bench runs' });
    if (created.status !== 201) throw new Error(`POST workspaces answered ${created.status}`);
    ws = (created.json as { id: string }).id;
    const warm = await oneRun();
    if (warm.view.status !== 'Completed') throw new Error(`a trivial run ended ${warm.view.status}: ${JSON.stringify(warm.view.phases)}`);
  } catch (error) {
    // The host's own last words say more than the wrapper's first line.
    const lines = (error as Error).message.split('\n').map((l) => l.trim()).filter(Boolean);
    const cause = lines.find((l) => /Error\b/.test(l) && !l.startsWith('at '));
    const detail = cause && cause !== lines[0] ? `${lines[0]} ${cause}` : (lines[0] ?? 'unknown error');
    unavailable = `the run lifecycle did not complete a trivial run: ${detail.slice(0, 400)}`;
    console.error(`runs benchmark unavailable:\n${(error as Error).message}`);
  }
}, 240_000);

afterAll(async () => {
  await host?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('whole runs on the local host', () => {
  it('reports unavailable, with the reason, when runs cannot complete here', () => {
    if (!unavailable) return;
    for (const c of CONCURRENCY) sink.add({ name: `runs.c${c}.runsPerMinute`, value: null, unit: 'runs/min', unavailable });
    expect(unavailable.length).toBeGreaterThan(0);
  });

  let c1: { perMinute: number; p50: number } | undefined;

  it('one run at a time without an MCP server: what a long-lived process adds to a run', async () => {
    if (unavailable || !host) return;
    const results: Array<{ ms: number; view: RunView }> = [];
    for (let i = 0; i < RUNS[1]; i++) results.push(await oneRun(false));
    expect(results.every((r) => r.view.status === 'Completed')).toBe(true);
    sink.add({
      name: 'runs.c1.withoutMcpServer.p50Ms', value: quantile(results.map((r) => r.ms), 0.5), unit: 'ms',
      note: `the same spec with no MCP server (the mcp phase still runs, empty); median ms per phase: ${phaseMedians(results.map((r) => r.view))}`,
    });
  });
  for (const concurrency of CONCURRENCY) {
    it(`${concurrency} concurrent runs: POST .../runs to Completed, five trivial phases`, async () => {
      if (unavailable || !host) return;
      const total = RUNS[concurrency];
      const results: Array<{ ms: number; view: RunView }> = [];
      let next = 0;
      const start = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < total) {
            next++;
            results.push(await oneRun());
          }
        }),
      );
      const elapsed = performance.now() - start;
      const completed = results.filter((r) => r.view.status === 'Completed');
      expect(completed.length).toBe(total);
      for (const r of completed) expect(r.view.phases.map((p) => p.phase)).toEqual(['seed', 'install', 'mcp', 'turn', 'teardown']);

      const latencies = results.map((r) => r.ms);
      const perMinute = (completed.length / elapsed) * 60_000;
      const p50 = quantile(latencies, 0.5);
      const inPhases = results.reduce((sum, r) => sum + phaseMs(r.view), 0) / results.reduce((sum, r) => sum + r.ms, 0);
      const key = `runs.c${concurrency}`;
      const scaling = c1 && concurrency > 1;
      sink.add({
        name: `${key}.runsPerMinute`, value: perMinute, unit: 'runs/min',
        ...(scaling ? { baseline: { name: 'runs.c1.runsPerMinute', value: c1!.perMinute } } : {}),
        note: `${completed.length} runs in ${(elapsed / 1000).toFixed(1)} s; ${(100 * inPhases).toFixed(0)}% of each run inside phases (activities: leases, spawning and running the commands, their events), ${(100 * (1 - inPhases)).toFixed(0)}% between phases (orchestration engine: queues, replay, scheduling) and in POST/polling; median ms per phase: ${phaseMedians(results.map((r) => r.view))}`,
      });
      const withoutMcp = sink.all().find((f) => f.name === 'runs.c1.withoutMcpServer.p50Ms')?.value;
      const p50Baseline = scaling
        ? { name: 'runs.c1.p50Ms', value: c1!.p50 }
        : withoutMcp
          ? { name: 'runs.c1.withoutMcpServer.p50Ms', value: withoutMcp }
          : undefined;
      sink.add({ name: `${key}.p50Ms`, value: p50, unit: 'ms', ...(p50Baseline ? { baseline: p50Baseline } : {}) });
      sink.add({ name: `${key}.p99Ms`, value: quantile(latencies, 0.99), unit: 'ms', note: `nearest rank of ${latencies.length} runs; polled every 50 ms` });
      sink.add({ name: `${key}.phaseShare`, value: inPhases, unit: 'fraction', note: 'share of POST-to-Completed time inside phases (the rest is the orchestration engine)' });
      if (concurrency === 16) {
        const rss = peakRssMiB(host.child.pid!);
        sink.add({ name: 'runs.host.peakRssMiB', value: rss ?? null, unit: 'MiB', note: 'VmHWM of the host process after the 16-run batch (sandbox processes not included)', ...(rss === undefined ? { unavailable: 'no /proc' } : {}) });
      }
      if (concurrency === 1) c1 = { perMinute, p50 };
    });
  }
});
