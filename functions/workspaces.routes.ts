import { z } from 'zod';
import { createWorkspace, getWorkspace, removeMember, setMember } from '../domain/services/workspaces';
import { parseParams, readJsonBody } from '../infra/http/jsonBody';
import { type ApiRoute, json, noContent } from './http/apiRoute';
import { BODY_LIMITS, createWorkspaceBody, setMemberBody, userIdSchema, workspaceIdSchema } from './http/schemas';

const wsParams = z.object({ ws: workspaceIdSchema });
const memberParams = z.object({ ws: workspaceIdSchema, user: userIdSchema });

export const workspaceRoutes: readonly ApiRoute[] = [
  {
    name: 'createWorkspace',
    method: 'POST',
    route: 'workspaces',
    handle: async ({ request, caller, services }) => {
      const body = await readJsonBody(request, createWorkspaceBody, BODY_LIMITS.small);
      return json(201, await createWorkspace(services.deps, caller, body.name));
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
];
