import type { LiveSandbox } from '../ports/runSandboxes';
import type { RunSpec } from '../runSpec';
import type { LiveRun, RunContext } from './runContext';

export type McpServerSpec = NonNullable<RunSpec['mcp']>[number];
/** Starts one MCP server under fresh leases, as the mcp phase does (runSteps.ts `startServer`). */
export type StartMcpServer = (live: LiveRun, sandbox: LiveSandbox, server: McpServerSpec) => Promise<void>;

/**
 * Before another instance adopts a run's sandbox: every lease still active on the run was held by a process the
 * lost instance supervised (an MCP server, a command cut short), which adopting stops. Each is recorded as
 * `LeaseExpired` first, so whatever the old instance still writes (a release as its relay sees the exit) finds the
 * lease already ended. Returns how many ended.
 */
export async function expireLeasesOfLostInstance(ctx: RunContext): Promise<number> {
  const active = Object.keys((await ctx.state()).activeLeases).length;
  if (active === 0) return 0;
  await ctx.record({ type: 'ExpireLeases', now: ctx.runtime.deps.clock.now().toISOString(), all: true });
  return active;
}

/**
 * After the adoption: when the run is past its mcp phase, the spec's MCP servers are started again, each under
 * a new lease (resolved now: a rotation since reaches them), and the transcript says why.
 */
export async function restartMcpServers(ctx: RunContext, spec: RunSpec, live: LiveRun, sandbox: LiveSandbox, start: StartMcpServer): Promise<void> {
  const state = await ctx.state();
  if (!state.phases.some((p) => p.phase === 'mcp' && p.status === 'Completed')) return;
  for (const server of spec.mcp ?? []) {
    await ctx.transcript(`--- mcp:${server.name}: started again on this host instance (the one that ran it is gone; its lease expired) ---\n`);
    await start(live, sandbox, server);
  }
}
