import type { GatewayBearers } from '../../domain/ports/gatewayBearers';
import type { SandboxHost } from '../../domain/ports/sandboxHost';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { RunAborts } from '../../domain/services/runAborts';
import type { RunRuntime } from '../../domain/services/runContext';
import type { RunStores } from '../../domain/services/runPorts';
import { InMemoryRunSandboxes } from '../../infra/runs/inMemoryRunSandboxes';
import { LiveLeases } from '../../infra/runs/liveLeases';
import { SandboxRunProcesses } from '../../infra/runs/sandboxRunProcesses';

/** What a test chooses for the run lifecycle's runtime; the rest is this process's own, fresh for each runtime. */
export interface RunRuntimeParts<H extends SandboxHost> {
  readonly deps: ServiceDependencies;
  readonly stores: RunStores;
  readonly host: H;
  readonly bearers: GatewayBearers;
  readonly removeLeftovers: (sandboxId: string) => Promise<void>;
  /** How often the live leases re-check the secrets' logs (the production default when omitted). */
  readonly leaseCheckMs?: number;
}

/** A run runtime as the composition root builds it (functions/composition.ts), over a test's own host and stores. */
export function aRunRuntime<H extends SandboxHost>(parts: RunRuntimeParts<H>): RunRuntime & { host: H; leases: LiveLeases } {
  const { deps, stores, host, bearers, removeLeftovers, leaseCheckMs } = parts;
  return {
    deps,
    stores,
    host,
    processes: new SandboxRunProcesses(host),
    bearers,
    sandboxes: new InMemoryRunSandboxes(),
    aborts: new RunAborts(),
    leases: new LiveLeases(deps, leaseCheckMs === undefined ? {} : { checkMs: leaseCheckMs }),
    gatewayUrl: 'http://127.0.0.1:9/api/gateway/operations',
    removeLeftovers,
    live: new Map(),
  };
}
