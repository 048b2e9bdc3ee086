import { z } from 'zod';
import { defineIdentity, deleteIdentity, listIdentities } from '../domain/services/identities';
import { parseParams, readJsonBody } from './http/jsonBody';
import { type ApiRoute, json, noContent } from './http/apiRoute';
import { BODY_LIMITS, defineIdentityBody, identityNameSchema, workspaceIdSchema } from './http/schemas';

const wsParams = z.object({ ws: workspaceIdSchema });
const identityParams = z.object({ ws: workspaceIdSchema, name: identityNameSchema });

/** Workload identities (docs/identity.md): owners define and delete, members list; runs get tokens through the gateway. */
export const identityRoutes: readonly ApiRoute[] = [
  {
    name: 'defineIdentity',
    method: 'PUT',
    route: 'workspaces/{ws}/identities/{name}',
    handle: async ({ request, caller, services }) => {
      const { ws, name } = parseParams(identityParams, request.params);
      const body = await readJsonBody(request, defineIdentityBody, BODY_LIMITS.small);
      const { created, identity } = await defineIdentity(services.deps, caller, { workspaceId: ws, name, ...body });
      return json(created ? 201 : 200, identity);
    },
  },
  {
    name: 'listIdentities',
    method: 'GET',
    route: 'workspaces/{ws}/identities',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      return json(200, await listIdentities(services.deps, caller, ws));
    },
  },
  {
    name: 'deleteIdentity',
    method: 'DELETE',
    route: 'workspaces/{ws}/identities/{name}',
    handle: async ({ request, caller, services }) => {
      const { ws, name } = parseParams(identityParams, request.params);
      await deleteIdentity(services.deps, caller, { workspaceId: ws, name });
      return noContent();
    },
  },
];
