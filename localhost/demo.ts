import { randomBytes } from 'node:crypto';
import { type ApiReply, callApi } from './apiCall';
import { DEMO_GIT_PORTS } from './demoPorts';
import { startDevGitServer } from './devGitServer';

/**
 * `npm run demo`: a guided tour against a running `npm start`, printing what happens as it happens. It
 * creates a workspace, sets secrets, runs an agent that clones and pushes through the gateway to a local git
 * server (the agent never holds the git token, and carelessly prints its model key), shows the redacted
 * transcript and the verified audit trail, and tries a launch that smuggles a managed key into the env.
 */

export interface DemoOptions {
  readonly baseUrl: string;
  readonly token: string;
  readonly log: (line: string) => void;
  readonly timeoutMs?: number;
}

export interface DemoOutcome {
  readonly workspaceId: string;
  readonly runId: string;
  readonly runStatus: string;
  readonly pushedCommit: string | undefined;
  readonly seedCommit: string;
  readonly transcript: string;
  readonly refusal: { status: number; code: string; detail: string };
  /** A run asking for the git token in a command it wrote, which the owner did not allow. */
  readonly useRefusal: { status: number; code: string; detail: string };
  readonly audit: { ok: boolean; records: number };
  readonly modelKey: string;
  readonly gitToken: string;
}

/** The demo's agent: clones, commits and pushes through the gateway (never holding the git token), then tries a remote the token may not reach. */
export const DEMO_AGENT = String.raw`'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const [remote, elsewhere] = process.argv.slice(2);
async function gateway(operation) {
  const response = await fetch(process.env.GATEWAY_URL, {
    method: 'POST',
    headers: { authorization: 'Bearer ' + process.env.GATEWAY_TOKEN, 'content-type': 'application/json' },
    body: JSON.stringify(operation),
  });
  const body = await response.json();
  console.log('agent: gateway ' + operation.kind + ' ' + (operation.action || '') + ' ' + operation.remote + ' -> HTTP ' + response.status + (body.ok ? ' ok' : ' ' + (body.code || body.stderr || '')));
  return response.status;
}
(async () => {
  console.log('agent: careless print of my model key: ' + process.env.OPENAI_API_KEY);
  console.log('agent: GIT_TOKEN in my env? ' + (process.env.GIT_TOKEN ? 'yes' : 'no'));
  await gateway({ kind: 'git', action: 'clone', remote, secret: 'GIT_TOKEN', dir: 'repo' });
  fs.writeFileSync('repo/NOTES.md', 'Written by the agent at ' + new Date().toISOString() + '\n');
  const git = (...args) => execFileSync('git', ['-c', 'safe.directory=*', '-C', 'repo', ...args], { encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 'Agent', GIT_AUTHOR_EMAIL: 'agent@example.invalid', GIT_COMMITTER_NAME: 'Agent', GIT_COMMITTER_EMAIL: 'agent@example.invalid' } });
  git('add', 'NOTES.md');
  git('commit', '--quiet', '-m', 'Notes from the agent');
  console.log('agent: committed ' + git('rev-parse', 'HEAD').trim());
  await gateway({ kind: 'git', action: 'push', remote, secret: 'GIT_TOKEN', dir: 'repo', ref: 'HEAD:main' });
  await gateway({ kind: 'git', action: 'push', remote: elsewhere, secret: 'GIT_TOKEN', dir: 'repo', ref: 'HEAD:main' });
})().catch((error) => { console.error('agent failed: ' + error.message); process.exit(1); });
`;

function call(options: DemoOptions, method: string, route: string, body?: unknown): Promise<ApiReply> {
  return callApi(options.baseUrl, options.token, method, route, body);
}

function expectStatus(step: string, reply: { status: number; text: string }, ...ok: number[]): void {
  if (!ok.includes(reply.status)) throw new Error(`${step}: HTTP ${reply.status} ${reply.text.slice(0, 300)}`);
}

export async function runDemo(options: DemoOptions): Promise<DemoOutcome> {
  const { log } = options;
  const health = await fetch(`${options.baseUrl}/api/health`).catch(() => undefined);
  if (!health?.ok) throw new Error(`nothing answers at ${options.baseUrl}/api/health: start the backend with \`npm start\` first`);

  const gitToken = `ghp_demo_${randomBytes(12).toString('hex')}`;
  const modelKey = `sk-demo-${randomBytes(12).toString('hex')}`;
  const git = await startDevGitServer(gitToken, { port: DEMO_GIT_PORTS[0] });
  const other = await startDevGitServer(gitToken, { port: DEMO_GIT_PORTS[1] }).catch(async (error: unknown) => {
    await git.close();
    throw error;
  });
  try {
    await git.createRepo('demo', { 'README.md': '# Demo repository\n' });
    await other.createRepo('demo', { 'README.md': '# Somewhere the token must not go\n' });
    const seedCommit = await git.revParse('demo', 'main');
    log(`1. Local git server at ${git.origin}/demo.git (Basic auth, token ${gitToken.slice(0, 9)}…); a second one at ${other.origin} that the token is NOT allowed to reach.`);

    const created = await call(options, 'POST', '/api/workspaces', { name: 'Demo workspace' });
    expectStatus('create workspace', created, 201);
    const workspaceId = (created.json as { id: string }).id;
    log(`2. Created workspace ${workspaceId}.`);

    const gitHost = new URL(git.origin).host;
    // Each secret says what it may be used for: the git token only through the gateway's git (never handed to a
    // process the RunSpec's author wrote), the model key as a turn's model key, which hands it to the agent runtime.
    const gitSecret = { value: gitToken, allowedHosts: [gitHost], uses: { git: 'members' } };
    expectStatus('set GIT_TOKEN', await call(options, 'PUT', `/api/workspaces/${workspaceId}/secrets/GIT_TOKEN`, gitSecret), 201);
    expectStatus('set OPENAI_API_KEY', await call(options, 'PUT', `/api/workspaces/${workspaceId}/secrets/OPENAI_API_KEY`, { value: modelKey, uses: { model: 'members' } }), 201);
    const listing = await call(options, 'GET', `/api/workspaces/${workspaceId}/secrets`);
    log(`3. Set two secrets, each with the uses its owner allows. The API lists metadata only, never a value: ${listing.text}`);

    const started = await call(options, 'POST', `/api/workspaces/${workspaceId}/runs`, {
      template: { files: { 'agent.js': DEMO_AGENT } },
      env: { LOG_LEVEL: 'info' },
      turns: [{ command: ['node', 'agent.js', `${git.origin}/demo.git`, `${other.origin}/demo.git`], modelKey: 'OPENAI_API_KEY' }],
      deadlineSeconds: 120,
    });
    expectStatus('start run', started, 202);
    const runId = (started.json as { runId: string }).runId;
    log(`4. Started run ${runId}; its phases as they happen:`);

    const deadline = Date.now() + (options.timeoutMs ?? 120_000);
    const seen = new Set<string>();
    let runStatus = 'Pending';
    while (Date.now() < deadline) {
      const view = (await call(options, 'GET', `/api/workspaces/${workspaceId}/runs/${runId}`)).json as { status: string; phases: Array<{ phase: string; turn?: number; status: string }> };
      for (const phase of view.phases ?? []) {
        const line = `${phase.phase}${phase.turn ? ` #${phase.turn}` : ''}: ${phase.status}`;
        if (!seen.has(line)) {
          seen.add(line);
          log(`   - ${line}`);
        }
      }
      runStatus = view.status;
      if (['Completed', 'Failed', 'Cancelled'].includes(runStatus)) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    log(`   Run ${runStatus}.`);

    const transcript = (await call(options, 'GET', `/api/workspaces/${workspaceId}/runs/${runId}/transcript`)).text;
    log('5. The transcript, redacted before it was written (the agent printed its key; look for [REDACTED:OPENAI_API_KEY]):');
    for (const line of transcript.split('\n').filter((l) => l.trim() !== '')) log(`   | ${line}`);

    const pushed = await git.revParse('demo', 'main');
    const pushedCommit = pushed !== seedCommit ? pushed : undefined;
    log(`6. The git server's main is now ${pushed.slice(0, 12)} (${pushedCommit ? 'the agent pushed through the gateway' : 'no push arrived'}); the other server is untouched: ${(await other.revParse('demo', 'main')).slice(0, 12)}.`);

    const audit = (await call(options, 'GET', `/api/workspaces/${workspaceId}/audit/verify`)).json as { ok: boolean; records: number };
    const records = (await call(options, 'GET', `/api/workspaces/${workspaceId}/audit?limit=500`)).json as { records: Array<{ type: string }> };
    log(`7. Audit trail: ${records.records.map((r) => r.type).join(' → ')}`);
    log(`   verify: ok=${audit.ok}, ${audit.records} hash-chained, signed records.`);

    const refused = await call(options, 'POST', `/api/workspaces/${workspaceId}/runs`, {
      template: { files: { 'agent.js': 'console.log(1)' } },
      env: { DEPLOY_URL: `https://deploy:${gitToken}@example.com/hook` },
      turns: [{ command: ['node', 'agent.js'] }],
      deadlineSeconds: 60,
    });
    const problem = refused.json as { code?: string; detail?: string };
    log(`8. A launch whose env smuggles the git token inside a URL: HTTP ${refused.status} ${problem.code ?? ''}: ${problem.detail ?? refused.text}`);

    const handedOver = await call(options, 'POST', `/api/workspaces/${workspaceId}/runs`, {
      template: { files: { 'agent.js': 'console.log(1)', 'setup.js': 'console.log(process.env.TOKEN)' } },
      install: [{ command: ['node', 'setup.js'], secrets: [{ ref: 'GIT_TOKEN', use: 'env', as: 'TOKEN' }] }],
      turns: [{ command: ['node', 'agent.js'] }],
      deadlineSeconds: 60,
    });
    const useProblem = handedOver.json as { code?: string; detail?: string };
    log(`9. A run asking for the git token in its own install command's env (the owner allowed only git): HTTP ${handedOver.status} ${useProblem.code ?? ''}: ${useProblem.detail ?? handedOver.text}`);

    return {
      workspaceId,
      runId,
      runStatus,
      pushedCommit,
      seedCommit,
      transcript,
      refusal: { status: refused.status, code: problem.code ?? '', detail: problem.detail ?? '' },
      useRefusal: { status: handedOver.status, code: useProblem.code ?? '', detail: useProblem.detail ?? '' },
      audit: { ok: audit.ok, records: audit.records },
      modelKey,
      gitToken,
    };
  } finally {
    await git.close();
    await other.close();
  }
}
