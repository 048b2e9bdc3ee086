import { z } from 'zod';
import { revokeSecret } from '../domain/services/secretRevocation';
import { deleteSecret, listSecrets, setSecret } from '../domain/services/secrets';
import { parseParams, readJsonBody } from '../infra/http/jsonBody';
import { type ApiRoute, json, noContent } from './http/apiRoute';
import { BODY_LIMITS, secretNameSchema, setSecretBody, workspaceIdSchema } from './http/schemas';

const wsParams = z.object({ ws: workspaceIdSchema });
const secretParams = z.object({ ws: workspaceIdSchema, name: secretNameSchema });

/** There is deliberately no route that reads a value back: set, list (metadata), delete and revoke only. */
export const secretRoutes: readonly ApiRoute[] = [
  {
    name: 'setSecret',
    method: 'PUT',
    route: 'workspaces/{ws}/secrets/{name}',
    handle: async ({ request, caller, services }) => {
      const { ws, name } = parseParams(secretParams, request.params);
      const body = await readJsonBody(request, setSecretBody, BODY_LIMITS.secret);
      const { created, secret, leasesRevoked } = await setSecret(services.deps, caller, {
        workspaceId: ws,
        name,
        value: body.value,
        ...(body.allowedHosts ? { allowedHosts: body.allowedHosts } : {}),
        ...(body.uses ? { uses: body.uses } : {}),
        ...(body.revoke === true ? { revoke: true } : {}),
      });
      return json(created ? 201 : 200, {
        name: secret.name,
        version: secret.version,
        updatedAt: secret.updatedAt,
        updatedBy: secret.updatedBy,
        allowedHosts: secret.allowedHosts,
        uses: secret.uses,
        ...(leasesRevoked !== undefined ? { leasesRevoked } : {}),
      });
    },
  },
  {
    // Revoke without a new value: the current value is deleted and every live lease of any version so far ends.
    name: 'revokeSecret',
    method: 'POST',
    route: 'workspaces/{ws}/secrets/{name}/revoke',
    handle: async ({ request, caller, services }) => {
      const { ws, name } = parseParams(secretParams, request.params);
      const { revokedThrough, leasesRevoked } = await revokeSecret(services.deps, caller, { workspaceId: ws, name });
      return json(200, { name, revokedThrough, leasesRevoked });
    },
  },
  {
    name: 'listSecrets',
    method: 'GET',
    route: 'workspaces/{ws}/secrets',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      return json(200, await listSecrets(services.deps, caller, ws));
    },
  },
  {
    name: 'deleteSecret',
    method: 'DELETE',
    route: 'workspaces/{ws}/secrets/{name}',
    handle: async ({ request, caller, services }) => {
      const { ws, name } = parseParams(secretParams, request.params);
      await deleteSecret(services.deps, caller, { workspaceId: ws, name });
      return noContent();
    },
  },
];
