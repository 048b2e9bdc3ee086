import { z } from 'zod';
import { getEgressAllowList, setEgressAllowList } from '../domain/services/egress';
import { createWorkspace, getWorkspace, removeMember, setMember } from '../domain/services/workspaces';
import { parseParams, readJsonBody } from './http/jsonBody';
import { type ApiRoute, json, noContent } from './http/apiRoute';
import { BODY_LIMITS, createWorkspaceBody, setEgressBody, setMemberBody, userIdSchema, workspaceIdSchema } from './http/schemas';

const wsParams = z.object({ ws: workspaceIdSchema });
const memberParams = z.object({ ws: workspaceIdSchema, user: userIdSchema });

export const workspaceRoutes: readonly ApiRoute[] = [
  {
    name: 'createWorkspace',
    method: 'POST',
    route: 'workspaces',
    handle: async ({ request, caller, services }) => {
      const body = await readJsonBody(request, createWorkspaceBody, BODY_LIMITS.small);
      return json(201, await createWorkspace(services.deps, caller, body.name, body.retentionDays));
    },
  },
  {
    name: 'getWorkspace',
    method: 'GET',
    route: 'workspaces/{ws}',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      return json(200, await getWorkspace(services.deps, caller, ws));
    },
  },
  {
    name: 'setMember',
    method: 'PUT',
    route: 'workspaces/{ws}/members/{user}',
    handle: async ({ request, caller, services }) => {
      const { ws, user } = parseParams(memberParams, request.params);
      const body = await readJsonBody(request, setMemberBody, BODY_LIMITS.small);
      return json(200, await setMember(services.deps, caller, ws, user, body.role));
    },
  },
  {
    name: 'removeMember',
    method: 'DELETE',
    route: 'workspaces/{ws}/members/{user}',
    handle: async ({ request, caller, services }) => {
      const { ws, user } = parseParams(memberParams, request.params);
      await removeMember(services.deps, caller, ws, user);
      return noContent();
    },
  },
  {
    name: 'getEgress',
    method: 'GET',
    route: 'workspaces/{ws}/egress',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      return json(200, await getEgressAllowList(services.deps, caller, ws));
    },
  },
  {
    name: 'setEgress',
    method: 'PUT',
    route: 'workspaces/{ws}/egress',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      const body = await readJsonBody(request, setEgressBody, BODY_LIMITS.egress);
      return json(200, await setEgressAllowList(services.deps, caller, ws, body.allowedHosts));
    },
  },
];
