import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { once } from 'node:events';
import path from 'node:path';

/** The well-known development account Azurite ships with; valid only against a local emulator. */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuritePorts {
  blob: number;
  queue: number;
  table: number;
}

export interface RunningAzurite {
  ports: AzuritePorts;
  connectionString: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface StartAzuriteOptions {
  /** Keep data on disk under this folder; omitted means in memory. */
  location?: string;
  ports?: Partial<AzuritePorts>;
  /** Where the azurite package lives; defaults to this project's node_modules. */
  projectRoot?: string;
}

export function azuriteConnectionString(ports: AzuritePorts, host = '127.0.0.1'): string {
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${AZURITE_ACCOUNT}`,
    `AccountKey=${AZURITE_KEY}`,
    `BlobEndpoint=http://${host}:${ports.blob}/${AZURITE_ACCOUNT}`,
    `QueueEndpoint=http://${host}:${ports.queue}/${AZURITE_ACCOUNT}`,
    `TableEndpoint=http://${host}:${ports.table}/${AZURITE_ACCOUNT}`,
  ].join(';');
}

export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

async function waitForPort(port: number, deadline: number): Promise<void> {
  const { connect } = await import('node:net');
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`Azurite did not start listening on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts Azurite (blob, queue, table) on loopback with telemetry off and waits until all three listen. */
export async function startAzurite(options: StartAzuriteOptions = {}): Promise<RunningAzurite> {
  const ports: AzuritePorts = {
    blob: options.ports?.blob ?? (await freeLoopbackPort()),
    queue: options.ports?.queue ?? (await freeLoopbackPort()),
    table: options.ports?.table ?? (await freeLoopbackPort()),
  };
  const root = options.projectRoot ?? path.resolve(__dirname, '..', '..');
  const entry = require.resolve('azurite/dist/src/azurite.js', { paths: [root, process.cwd()] });
  const args = [
    entry,
    '--silent',
    '--disableTelemetry',
    '--skipApiVersionCheck',
    '--loose',
    '--blobHost', '127.0.0.1', '--blobPort', String(ports.blob),
    '--queueHost', '127.0.0.1', '--queuePort', String(ports.queue),
    '--tableHost', '127.0.0.1', '--tablePort', String(ports.table),
  ];
  if (options.location) args.push('--location', options.location);
  else args.push('--inMemoryPersistence');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const deadline = Date.now() + 30_000;
  try {
    await Promise.race([
      (async () => {
        for (const port of [ports.blob, ports.queue, ports.table]) await waitForPort(port, deadline);
      })(),
      once(child, 'exit').then(([code]) => {
        throw new Error(`Azurite exited with code ${String(code)} before listening: ${stderr.trim()}`);
      }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    ports,
    connectionString: azuriteConnectionString(ports),
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await once(child, 'exit');
      clearTimeout(timer);
    },
  };
}
