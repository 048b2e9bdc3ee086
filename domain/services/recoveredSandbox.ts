import { NOTHING_ALLOWED } from '../egress';
import { isRecoverable } from '../ports/sandboxHost';
import { RefreshableRedactor } from '../redaction/refreshableRedactor';
import type { RunState } from '../run';
import type { RunSpec } from '../runSpec';
import type { RunContext } from './runContext';
import { loadSecretMaterial } from './runSecrets';

/**
 * After a restart or a move, this instance has no record of the run's sandbox; a host whose sandboxes outlive
 * their instance (Docker) finds it by the run id and adopts it, with the redactor and guard rebuilt from the
 * vault as of now (as `seed` builds them). MCP servers the previous instance started are not known here.
 * Returns whether the run has its sandbox again.
 */
export async function recoverSandbox(ctx: RunContext, state: RunState, spec: RunSpec): Promise<boolean> {
  const host = ctx.runtime.host;
  if (!isRecoverable(host)) return false;
  const found = await host.find(ctx.runId);
  if (!found || (state.sandboxId !== undefined && found.sandboxId !== state.sandboxId)) return false;
  const material = await loadSecretMaterial(ctx.runtime.deps, ctx.workspaceId);
  const redactor = new RefreshableRedactor(material.values);
  const handle = await host.adopt(found, { redactor, guard: material.guard, egress: NOTHING_ALLOWED, ...(spec.env ? { env: spec.env } : {}) });
  ctx.runtime.live.set(ctx.runId, { redactor, servers: [] });
  ctx.runtime.sandboxes.put({ workspaceId: ctx.workspaceId, runId: ctx.runId, handle, redactor, guard: material.guard, deadline: state.deadline });
  return true;
}
