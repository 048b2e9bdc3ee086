import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { SandboxHost } from '../../../domain/ports/sandboxHost';
import { dockerSocketPath } from '../docker/dockerEngine';
import { DockerSandboxHost } from '../docker/dockerSandboxHost';
import { LocalProcessSandboxHost } from '../localProcessSandboxHost';
import { HostAgent } from './hostAgent';
import { WebPubSubClientSocket } from './webPubSubClientSocket';
import { ManagedIdentityCredential } from '@azure/identity';

/**
 * `npm run host-agent -- --platform <https url> --token <enrolment token> [--ca <pem>] [--state <file>]
 * [--inner local-process|docker] [--isolation auto|off] [--channel direct|web-pubsub] [--managed-identity <app audience>]
 * [--root <dir>] [--image <sandbox image>] [--scope <label scope>] [--gateway-url <url>] [--max-sandboxes <n>]`. The inner host is the one
 * this machine runs sandboxes on. `--gateway-url` is the platform's gateway as this machine reaches it (isolated
 * sandboxes get a door to it); `--egress-test-servers host:port,...` is for tests and local demos only.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      platform: { type: 'string' }, token: { type: 'string' }, ca: { type: 'string' }, state: { type: 'string' },
      inner: { type: 'string', default: 'local-process' }, isolation: { type: 'string', default: 'auto' },
      channel: { type: 'string', default: 'direct' }, 'managed-identity': { type: 'string' },
      root: { type: 'string' }, 'gateway-url': { type: 'string' }, 'egress-test-servers': { type: 'string' },
      image: { type: 'string' }, scope: { type: 'string' }, 'max-sandboxes': { type: 'string' },
    },
  });
  if (!values.platform) {
    console.error('usage: npm run host-agent -- --platform <https url> --token <enrolment token> [--ca <pem>] [--state <file>]');
    return 2;
  }
  const testServers = values['egress-test-servers']?.split(',').filter(Boolean) ?? [];
  const inners: Record<string, () => Promise<SandboxHost>> = {
    'local-process': () => LocalProcessSandboxHost.open({
      isolation: values.isolation === 'off' ? 'off' : 'auto',
      ...(values.root ? { root: values.root } : {}),
      ...(values['gateway-url'] ? { gatewayUrl: values['gateway-url'] } : {}),
      ...(testServers.length > 0 ? { egress: { testServers: () => testServers } } : {}),
    }),
    // The Docker engine at DOCKER_HOST, owned by the agent alone: the platform only ever speaks the sandbox protocol.
    docker: () => {
      const image = values.image ?? process.env.SANDBOX_IMAGE;
      return DockerSandboxHost.open({
        socketPath: dockerSocketPath(),
        ...(image ? { image } : {}),
        // Its own label scope: at start the agent removes its scope's containers it does not know (an earlier agent's).
        scope: values.scope ?? 'host-agent',
        ...(values['gateway-url'] ? { gatewayUrl: values['gateway-url'] } : {}),
        ...(testServers.length > 0 ? { egress: { testServers: () => testServers } } : {}),
      });
    },
  };
  const makeInner = inners[values.inner ?? 'local-process'];
  if (!makeInner) {
    console.error(`--inner must be one of ${Object.keys(inners).join(', ')}`);
    return 2;
  }
  if (values.channel !== 'direct' && values.channel !== 'web-pubsub') {
    console.error('--channel must be direct (the platform serves the socket) or web-pubsub (the platform negotiates a Web PubSub connection)');
    return 2;
  }
  const maxSandboxes = values['max-sandboxes'] === undefined ? undefined : Number(values['max-sandboxes']);
  if (maxSandboxes !== undefined && !(Number.isInteger(maxSandboxes) && maxSandboxes >= 1 && maxSandboxes <= 1000)) {
    console.error('--max-sandboxes must be a whole number from 1 to 1000');
    return 2;
  }
  const platform = values.platform.replace(/\/$/, '');
  const ca = values.ca ? readFileSync(values.ca, 'utf8') : undefined;
  const agent = new HostAgent({
    platform,
    ...(values.token ? { token: values.token } : {}),
    ...(ca ? { ca } : {}),
    // A managed-pool machine enrols with its managed identity's token for the app (`--managed-identity api://<app>`).
    ...(values['managed-identity'] ? { identityToken: managedIdentityToken(values['managed-identity']) } : {}),
    ...(values.channel === 'web-pubsub' ? { dial: (credential: string) => new WebPubSubClientSocket(platform, credential, ca) } : {}),
    stateFile: values.state ?? path.join(os.homedir(), '.disco-parrot', 'host-agent.json'),
    ...(maxSandboxes !== undefined ? { maxSandboxes } : {}),
    inner: await makeInner(),
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void agent.stop());
  const outcome = await agent.run();
  return outcome === 'revoked' ? 3 : 0;
}

function managedIdentityToken(resource: string): () => Promise<string> {
  const credential = new ManagedIdentityCredential();
  return async () => {
    const token = await credential.getToken(`${resource.replace(/\/$/, '')}/.default`);
    if (!token) throw new Error('the machine has no managed identity token for the platform');
    return token.token;
  };
}
