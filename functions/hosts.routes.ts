import { z } from 'zod';
import { listSandboxHosts, offerHostEnrolment, revokeHost } from '../domain/services/sandboxHosts';
import { parseParams, readJsonBody } from './http/jsonBody';
import { hostChannelControl, randomHostCredentials } from '../infra/sandbox/remote/randomHostCredentials';
import { type ApiRoute, json, noContent } from './http/apiRoute';
import { BODY_LIMITS, workspaceIdSchema } from './http/schemas';

const wsParams = z.object({ ws: workspaceIdSchema });
const hostParams = z.object({ ws: workspaceIdSchema, id: workspaceIdSchema });
const enrolBody = z.strictObject({ name: z.string().min(1).max(63) });

/** Sandbox hosts a workspace brings (docs/sandbox-hosts.md): owners enrol and revoke, members list. */
export const hostRoutes: readonly ApiRoute[] = [
  {
    name: 'enrolHost',
    method: 'POST',
    route: 'workspaces/{ws}/hosts',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      const body = await readJsonBody(request, enrolBody, BODY_LIMITS.small);
      return json(201, await offerHostEnrolment(services.deps, randomHostCredentials, caller, { workspaceId: ws, name: body.name }));
    },
  },
  {
    name: 'listHosts',
    method: 'GET',
    route: 'workspaces/{ws}/hosts',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      return json(200, await listSandboxHosts(services.deps, caller, ws, (hostId) => hostChannelControl.get()?.lastSeen(hostId)));
    },
  },
  {
    name: 'revokeHost',
    method: 'DELETE',
    route: 'workspaces/{ws}/hosts/{id}',
    handle: async ({ request, caller, services }) => {
      const { ws, id } = parseParams(hostParams, request.params);
      const reason = await revokeHost(services.deps, caller, { workspaceId: ws, hostId: id });
      hostChannelControl.get()?.cutOff(id, reason, ws);
      return noContent();
    },
  },
];
