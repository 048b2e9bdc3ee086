import { TableClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import type { GatewayBearers } from '../../domain/ports/gatewayBearers';
import type { SandboxHost } from '../../domain/ports/sandboxHost';
import type { ServiceDependencies } from '../../domain/services/dependencies';
import { RunAborts } from '../../domain/services/runAborts';
import type { RunRuntime } from '../../domain/services/runContext';
import type { RunStores } from '../../domain/services/runPorts';
import { TableGatewayBearers } from '../../infra/gateway/tableGatewayBearers';
import { BlobRunSpecStore, BlobTranscriptStore } from '../../infra/runs/blobRunStores';
import { InMemoryRunSandboxes } from '../../infra/runs/inMemoryRunSandboxes';
import { LiveLeases } from '../../infra/runs/liveLeases';
import { SandboxRunProcesses } from '../../infra/runs/sandboxRunProcesses';
import { azuriteConnectionString, uniqueName } from './azurite';

/** What a test chooses for the run lifecycle's runtime; the rest is this process's own, fresh for each runtime. */
export interface RunRuntimeParts<H extends SandboxHost> {
  readonly deps: ServiceDependencies;
  readonly stores: RunStores;
  readonly host: H;
  readonly bearers: GatewayBearers;
  readonly removeLeftovers: RunRuntime['removeLeftovers'];
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

/** Spec and transcript containers and a gateway bearer table of the test's own in Azurite (fresh names each call). */
export async function runStoresOnAzurite(): Promise<{ stores: RunStores; bearers: TableGatewayBearers }> {
  const blobs = BlobServiceClient.fromConnectionString(azuriteConnectionString());
  const stores = { specs: new BlobRunSpecStore(blobs.getContainerClient(uniqueName('specs'))), transcripts: new BlobTranscriptStore(blobs.getContainerClient(uniqueName('tr'))) };
  const bearerTable = TableClient.fromConnectionString(azuriteConnectionString(), uniqueName('bearers'), { allowInsecureConnection: true });
  await bearerTable.createTable();
  return { stores, bearers: new TableGatewayBearers(bearerTable) };
}
