import { NOTHING_ALLOWED } from '../egress';
import { isRecoverable } from '../ports/sandboxHost';
import { RefreshableRedactor } from '../redaction/refreshableRedactor';
import type { RunState } from '../run';
import type { RunSpec } from '../runSpec';
import { expireLeasesOfLostInstance, restartMcpServers, type StartMcpServer } from './adoptedMcpServers';
import type { LiveRun, RunContext } from './runContext';
import { loadSecretMaterial } from './runSecrets';

/**
 * After a restart or a move, this instance has no record of the run's sandbox; a host whose sandboxes outlive
 * their instance (Docker) finds it by the run id and adopts it, with the redactor and guard rebuilt from the
 * vault as of now (as `seed` builds them). The leases the lost instance's processes held end as expired, the
 * host stops those processes, and MCP servers the run had are started again under new leases (`startServer`).
 * Returns whether the run has its sandbox again.
 */
export async function recoverSandbox(ctx: RunContext, state: RunState, spec: RunSpec, startServer?: StartMcpServer): Promise<boolean> {
  const host = ctx.runtime.host;
  if (!isRecoverable(host)) return false;
  const found = await host.find(ctx.runId);
  if (!found || (state.sandboxId !== undefined && found.sandboxId !== state.sandboxId)) return false;
  await expireLeasesOfLostInstance(ctx);
  const material = await loadSecretMaterial(ctx.runtime.deps, ctx.workspaceId);
  const redactor = new RefreshableRedactor(material.values);
  const handle = await host.adopt(found, { redactor, guard: material.guard, egress: NOTHING_ALLOWED, ...(spec.env ? { env: spec.env } : {}) });
  const live: LiveRun = { redactor, servers: [] };
  ctx.runtime.live.set(ctx.runId, live);
  ctx.runtime.sandboxes.put({ workspaceId: ctx.workspaceId, runId: ctx.runId, handle, redactor, guard: material.guard, deadline: state.deadline });
  const sandbox = ctx.runtime.sandboxes.get(ctx.runId);
  if (startServer && sandbox) await restartMcpServers(ctx, spec, live, sandbox, startServer);
  return true;
}
