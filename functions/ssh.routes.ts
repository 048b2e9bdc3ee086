import { z } from 'zod';
import { issueSshTicket } from '../domain/services/runSsh';
import { parseParams } from './http/jsonBody';
import { type ApiRoute, json } from './http/apiRoute';
import { workspaceIdSchema } from './http/schemas';
import { randomHostCredentials } from '../infra/sandbox/remote/randomHostCredentials';
import { sshAccessPoint } from '../infra/sandbox/remote/sshRelay';

const runParams = z.object({ ws: workspaceIdSchema, runId: z.uuid() });

/** The name the IDE's ssh config uses for a run's sandbox: what `knownHosts` pins its host key to. */
export const sshHostAlias = (runId: string): string => `dp-run-${runId}`;

/** Single-quoted for a POSIX shell (ssh runs ProxyCommand through one). */
const quoted = (value: string): string => `'${value.replace(/'/g, `'\\''`)}'`;

/**
 * IDE SSH into a live run's sandbox (docs/sandbox-hosts.md#ide-ssh-over-the-host-channel): a member gets a ticket
 * good for one session opened within a minute, and the ProxyCommand that presents it.
 */
export const sshRoutes: readonly ApiRoute[] = [
  {
    name: 'openRunSsh',
    method: 'POST',
    route: 'workspaces/{ws}/runs/{runId}/ssh',
    handle: async ({ request, caller, services }) => {
      const { ws, runId } = parseParams(runParams, request.params);
      const point = sshAccessPoint.get();
      const issued = await issueSshTicket(services.deps, randomHostCredentials, point?.targets, caller, { workspaceId: ws, runId });
      const host = sshHostAlias(runId);
      // In Azure the proxy connects to Web PubSub with a client URL minted for this ticket alone.
      const pubsubUrl = point?.clientUrl ? await point.clientUrl(issued.ticketId) : undefined;
      const endpoint = pubsubUrl !== undefined ? `--pubsub ${quoted(pubsubUrl)}` : `--platform ${quoted(point?.platformUrl ?? '')}`;
      const proxyArgs = [endpoint, ...(point?.caFile ? [`--ca ${quoted(point.caFile)}`] : []), quoted(issued.ticket)];
      return json(201, {
        ticket: issued.ticket,
        expiresAt: issued.expiresAt,
        host,
        hostId: issued.hostId,
        ...(pubsubUrl !== undefined ? { pubsubUrl } : {}),
        proxyCommand: `npm run -s ssh-proxy -- ${proxyArgs.join(' ')}`,
        ...(issued.hostKey ? { knownHosts: `${host} ${issued.hostKey}` } : {}),
      });
    },
  },
];
