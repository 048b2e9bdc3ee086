import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';
import { z } from 'zod';
import { isDomainError } from '../domain/errors';
import { SECRET_USES } from '../domain/runSpec';
import type { RunOrchestrations, RunStores } from '../domain/services/runPorts';
import { LeaseRefused } from '../domain/services/leaseDecisions';
import { RUN_ERROR, cancelRun, getRun, readTranscript, requestRun } from '../domain/services/runs';
import { HttpProblem } from './http/problem';
import { parseParams, readJsonBody } from './http/jsonBody';
import { type ApiRoute, json } from './http/apiRoute';
import { egressHostsSchema, hostSchema, secretNameSchema, workspaceIdSchema } from './http/schemas';
import { EGRESS_ERROR } from '../domain/egress';
import { RUN_LIFECYCLE, CANCEL_EVENT } from './runLifecycle.names';

export const MAX_RUN_SPEC_BYTES = 1024 * 1024;
export const DEADLINE_SECONDS = { min: 10, max: 3600 } as const;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an env var name');
const argv = z.array(z.string().max(8192)).min(1).max(256);
const filePath = z
  .string()
  .max(512)
  .regex(/^(?!\/)(?!.*(^|\/)\.\.?(\/|$))[A-Za-z0-9._@+-]+(\/[A-Za-z0-9._@+-]+)*$/, 'must be a relative path without . or .. segments');

/** A credential's destination: a bare host (https) or an origin; the channel allows http for loopback only. */
const credentialHost = z.union([hostSchema, z.string().max(300).regex(/^https?:\/\/[A-Za-z0-9.[\]:-]+$/, 'must be a host or an origin')]);

const secretRef = z
  .strictObject({ ref: secretNameSchema, use: z.enum(SECRET_USES), as: envName.optional(), host: credentialHost.optional() })
  .refine((r) => (r.use === 'env' || r.use === 'file' ? r.as !== undefined : true), { message: '`as` is required for use env and file', path: ['as'] })
  .refine((r) => (r.use === 'git' || r.use === 'npm' ? r.host !== undefined : true), { message: '`host` is required for use git and npm', path: ['host'] });

/** The RunSpec as the API accepts it: strict objects, argv arrays, bounded everything; never a value. */
export const runSpecSchema = z.strictObject({
  template: z.strictObject({
    files: z.record(filePath, z.string()).refine((files) => Object.keys(files).length <= 1000, 'at most 1000 template files'),
  }),
  env: z.record(envName, z.string().max(32 * 1024)).refine((env) => Object.keys(env).length <= 128, 'at most 128 env vars').optional(),
  install: z.array(z.strictObject({ command: argv, secrets: z.array(secretRef).max(16).optional() })).max(32).optional(),
  mcp: z
    .array(z.strictObject({ name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a lower-case name'), command: argv, secrets: z.array(secretRef).max(16).optional() }))
    .max(16)
    .optional(),
  turns: z.array(z.strictObject({ command: argv, modelKey: secretNameSchema.optional() })).min(1).max(50),
  deadlineSeconds: z.number().int().min(DEADLINE_SECONDS.min).max(DEADLINE_SECONDS.max),
  egress: z.strictObject({ install: egressHostsSchema.optional(), mcp: egressHostsSchema.optional(), turns: egressHostsSchema.optional() }).optional(),
  keepWorkspace: z.boolean().optional(),
});

const wsParams = z.object({ ws: workspaceIdSchema });
const runParams = z.object({ ws: workspaceIdSchema, runId: z.uuid() });

/** The Durable client behind the orchestrations port; responses never carry its management URLs. */
export function durableRunOrchestrations(context: InvocationContext): RunOrchestrations {
  // The client is taken only when used, after authorization: a refused request never touches Durable.
  return {
    start: async (workspaceId, runId) => {
      await df.getClient(context).startNew(RUN_LIFECYCLE, { instanceId: runId, input: { workspaceId, runId } });
    },
    raiseCancel: async (runId) => {
      await df.getClient(context).raiseEvent(runId, CANCEL_EVENT, { reason: 'cancel requested' });
    },
  };
}

/** Stores built on first use, so settings are read only by requests that get past authorization. */
function lazyStores(get: () => Promise<RunStores>): RunStores {
  return {
    specs: {
      put: async (workspaceId, runId, spec) => (await get()).specs.put(workspaceId, runId, spec),
      get: async (workspaceId, specRef) => (await get()).specs.get(workspaceId, specRef),
    },
    transcripts: {
      append: async (workspaceId, runId, text) => (await get()).transcripts.append(workspaceId, runId, text),
      read: async (workspaceId, runId) => (await get()).transcripts.read(workspaceId, runId),
    },
  };
}

export interface RunRouteOptions {
  readonly stores: () => Promise<RunStores>;
  readonly orchestrations: (context: InvocationContext) => RunOrchestrations;
  /** Whether the sandbox host keeps a workspace's files on its volume (`keepWorkspace`); default: it does not. */
  readonly keepsWorkspaces?: () => boolean;
}

export const KEPT_WORKSPACE_UNSUPPORTED = RUN_ERROR.KEPT_WORKSPACE_UNSUPPORTED;

/** Problems the run routes answer with 422: the spec is well-formed but cannot run as asked. */
function unprocessable(error: unknown): never {
  if (error instanceof LeaseRefused || (isDomainError(error) && (error.code === RUN_ERROR.LAUNCH_REFUSED || error.code === RUN_ERROR.SECRET_NOT_FOUND || error.code === EGRESS_ERROR.NOT_IN_WORKSPACE_LIST)))
    throw new HttpProblem(422, error.code, error.message);
  throw error;
}

export function createRunRoutes(options: RunRouteOptions): readonly ApiRoute[] {
  const stores = lazyStores(options.stores);
  return [
    {
      name: 'requestRun',
      method: 'POST',
      route: 'workspaces/{ws}/runs',
      extraInputs: [df.input.durableClient()],
      handle: async ({ request, caller, services, context }) => {
        const { ws } = parseParams(wsParams, request.params);
        const spec = await readJsonBody(request, runSpecSchema, MAX_RUN_SPEC_BYTES);
        if (spec.keepWorkspace && !(options.keepsWorkspaces?.() ?? false))
          throw new HttpProblem(422, KEPT_WORKSPACE_UNSUPPORTED, 'keepWorkspace: this sandbox host keeps no workspace volumes (SANDBOX_HOST=docker does)');
        const { runId } = await requestRun(services.deps, stores, options.orchestrations(context), caller, { workspaceId: ws, spec }).catch(unprocessable);
        return json(202, { runId });
      },
    },
    {
      name: 'getRun',
      method: 'GET',
      route: 'workspaces/{ws}/runs/{runId}',
      handle: async ({ request, caller, services }) => {
        const { ws, runId } = parseParams(runParams, request.params);
        return json(200, await getRun(services.deps, caller, { workspaceId: ws, runId }));
      },
    },
    {
      name: 'getRunTranscript',
      method: 'GET',
      route: 'workspaces/{ws}/runs/{runId}/transcript',
      handle: async ({ request, caller, services }) => {
        const { ws, runId } = parseParams(runParams, request.params);
        const text = await readTranscript(services.deps, stores, caller, { workspaceId: ws, runId });
        return { status: 200, body: text, headers: { 'content-type': 'text/plain; charset=utf-8' } };
      },
    },
    {
      name: 'cancelRun',
      method: 'POST',
      route: 'workspaces/{ws}/runs/{runId}/cancel',
      extraInputs: [df.input.durableClient()],
      handle: async ({ request, caller, services, context }) => {
        const { ws, runId } = parseParams(runParams, request.params);
        await cancelRun(services.deps, options.orchestrations(context), caller, { workspaceId: ws, runId });
        return json(202, { runId });
      },
    },
  ];
}
