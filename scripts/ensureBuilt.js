'use strict';
// Builds dist/ when it is missing or older than the TypeScript it is compiled from, so a fresh clone
// needs only `npm install && npm start`. Build output goes to stderr: stdout stays the command's own (a token).
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const root = path.join(__dirname, '..');
const SOURCES = ['domain', 'infra', 'functions', 'localhost'];
const CONFIGS = ['tsconfig.json', 'tsconfig.base.json', 'domain/tsconfig.json', 'package.json'];

function newestMtime(target) {
  let newest = 0;
  const visit = (p) => {
    let stat;
    try {
      stat = fs.statSync(p);
    } catch {
      return;
    }
    if (stat.isDirectory()) {
      for (const entry of fs.readdirSync(p)) if (entry !== 'node_modules') visit(path.join(p, entry));
    } else if (/\.(ts|json)$/.test(p) && !p.endsWith('.d.ts')) newest = Math.max(newest, stat.mtimeMs);
  };
  visit(target);
  return newest;
}

function isStale(marker) {
  if (!fs.existsSync(marker)) return true;
  const built = fs.statSync(marker).mtimeMs;
  const newest = Math.max(...SOURCES.map((d) => newestMtime(path.join(root, d))), ...CONFIGS.map((f) => newestMtime(path.join(root, f))));
  return newest > built;
}

/** Runs `npm run build` when `marker` (a file in dist/) is missing or stale; exits on a failed build. */
function ensureBuilt(marker) {
  if (!isStale(marker)) return;
  console.error('Building (dist/ is missing or older than the sources): npm run build');
  const npmCli = process.env.npm_execpath;
  const result = npmCli && /\.c?js$/.test(npmCli)
    ? spawnSync(process.execPath, [npmCli, 'run', 'build'], { cwd: root, stdio: ['ignore', 2, 2] })
    : spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 2, 2], shell: process.platform === 'win32' });
  if (result.status !== 0 || !fs.existsSync(marker)) {
    console.error('The build failed; fix the errors above and run `npm start` again.');
    process.exit(1);
  }
}

module.exports = { ensureBuilt, root };
