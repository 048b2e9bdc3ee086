import * as df from 'durable-functions';
import { z } from 'zod';
import { requestWorkspaceDeletion, recoverWorkspace } from '../domain/services/workspaceLifecycle';
import { parseParams } from './http/jsonBody';
import { type ApiRoute, json } from './http/apiRoute';
import { workspaceIdSchema } from './http/schemas';
import { DELETE_WORKSPACE, deletionInstanceId } from './workspaceLifecycle.names';

const wsParams = z.object({ ws: workspaceIdSchema });
/** The range (7-90 days) is the domain's to check, after authorisation, so outsiders learn nothing from it. */
const deleteQuery = z.strictObject({ retentionDays: z.coerce.number().int().optional() });

export const workspaceLifecycleRoutes: readonly ApiRoute[] = [
  {
    name: 'requestWorkspaceDeletion',
    method: 'DELETE',
    route: 'workspaces/{ws}',
    extraInputs: [df.input.durableClient()],
    handle: async ({ request, caller, services, context }) => {
      const { ws } = parseParams(wsParams, request.params);
      const { retentionDays } = parseParams(deleteQuery, Object.fromEntries(request.query.entries()));
      const result = await requestWorkspaceDeletion(services.deps, caller, ws, retentionDays);
      // Only one request can move the workspace to Deleting (a second one sees 404), so one orchestration runs.
      await df.getClient(context).startNew(DELETE_WORKSPACE, { instanceId: deletionInstanceId(ws, services.deps.ids.next()), input: { workspaceId: ws } });
      return json(202, result);
    },
  },
  {
    name: 'recoverWorkspace',
    method: 'POST',
    route: 'workspaces/{ws}/recover',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      return json(202, await recoverWorkspace({ ...services.deps, records: services.records }, caller, ws));
    },
  },
];
