import type { ApiRoute } from './http/apiRoute';
import { auditRoutes } from './audit.routes';
import { secretRoutes } from './secrets.routes';
import { workspaceRoutes } from './workspaces.routes';

/** Every route of the public API; registration and the route-by-route tests both read this list. */
export const apiRoutes: readonly ApiRoute[] = [...workspaceRoutes, ...secretRoutes, ...auditRoutes];
