import type { ApiRoute } from './http/apiRoute';
import { auditRoutes } from './audit.routes';
import { appComposition, getRunStores } from './composition';
import { hostRoutes } from './hosts.routes';
import { identityRoutes } from './identities.routes';
import { createRunRoutes, durableRunOrchestrations } from './runs.routes';
import { secretRoutes } from './secrets.routes';
import { sshRoutes } from './ssh.routes';
import { workspaceRoutes } from './workspaces.routes';
import { workspaceLifecycleRoutes } from './workspaceLifecycle.routes';

/** The run routes over Blob storage and the Durable client of the invocation. */
export const runRoutes: readonly ApiRoute[] = createRunRoutes({
  stores: () => getRunStores(),
  orchestrations: durableRunOrchestrations,
  keepsWorkspaces: () => appComposition().settings.SANDBOX_HOST === 'docker',
});

/** Every route of the public API; registration and the route-by-route tests both read this list. */
export const apiRoutes: readonly ApiRoute[] = [...workspaceRoutes, ...workspaceLifecycleRoutes, ...secretRoutes, ...identityRoutes, ...hostRoutes, ...auditRoutes, ...runRoutes, ...sshRoutes];
