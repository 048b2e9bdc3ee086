import { z } from 'zod';
import { readAudit, verifyAudit } from '../domain/services/audit';
import { parseParams } from './http/jsonBody';
import { type ApiRoute, json } from './http/apiRoute';
import { auditQuery, workspaceIdSchema } from './http/schemas';

const wsParams = z.object({ ws: workspaceIdSchema });

export const auditRoutes: readonly ApiRoute[] = [
  {
    name: 'readAudit',
    method: 'GET',
    route: 'workspaces/{ws}/audit',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      const query = parseParams(auditQuery, Object.fromEntries(request.query.entries()));
      return json(200, await readAudit(services.deps, caller, { workspaceId: ws, ...query }));
    },
  },
  {
    name: 'verifyAudit',
    method: 'GET',
    route: 'workspaces/{ws}/audit/verify',
    handle: async ({ request, caller, services }) => {
      const { ws } = parseParams(wsParams, request.params);
      const result = await verifyAudit(services.deps, caller, ws);
      return json(200, result.ok ? { ok: true, records: result.records } : { ok: false, records: result.records, brokenAt: result.brokenAt, reason: result.reason });
    },
  },
];
