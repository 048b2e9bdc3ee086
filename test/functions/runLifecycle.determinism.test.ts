import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { importsOf } from '../support/sourceImports';

const orchestratorFile = path.resolve(__dirname, '..', '..', 'functions', 'runLifecycle.orchestrator.ts');

/** Imports an orchestrator may have: the durable library and our own names. Anything else could do I/O. */
const ALLOWED_IMPORTS = new Set(['durable-functions', './runLifecycle.names']);

/** Sources of non-determinism: the clock, randomness, the environment, timers, I/O and host globals. */
const FORBIDDEN: { name: string; pattern: RegExp }[] = [
  { name: 'Date.now()', pattern: /\bDate\.now\s*\(/ },
  { name: 'new Date() without an argument', pattern: /\bnew\s+Date\s*\(\s*\)/ },
  { name: 'Date() as a function', pattern: /(?<!new\s)\bDate\s*\(/ },
  { name: 'Math.random', pattern: /\bMath\.random\b/ },
  { name: 'process.*', pattern: /\bprocess\s*\./ },
  { name: 'timers', pattern: /\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/ },
  { name: 'fetch', pattern: /\bfetch\s*\(/ },
  { name: 'crypto', pattern: /\bcrypto\b|randomUUID/ },
  { name: 'performance', pattern: /\bperformance\./ },
  { name: 'async/await', pattern: /\basync\b|\bawait\b/ },
  { name: 'require()', pattern: /\brequire\s*\(/ },
  { name: 'console', pattern: /\bconsole\./ },
];

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}

export function violations(source: string): string[] {
  const found = importsOf(source).filter((s) => !ALLOWED_IMPORTS.has(s)).map((s) => `import ${s}`);
  const code = stripComments(source);
  for (const { name, pattern } of FORBIDDEN) if (pattern.test(code)) found.push(name);
  return found;
}

describe('runLifecycle orchestrator determinism', () => {
  const source = readFileSync(orchestratorFile, 'utf8');

  it('has no I/O import, clock, randomness, env, timer or await', () => {
    expect(violations(source)).toEqual([]);
  });

  it('is a generator registered under its exported name', () => {
    expect(source).toMatch(/export function\* runLifecycle\(/);
    expect(source).toMatch(/df\.app\.orchestration\(RUN_LIFECYCLE, runLifecycle\)/);
    expect(source).not.toMatch(/callActivity(WithRetry)?\(\s*'/); // activity names are constants
  });

  it.each([
    ["import { readFile } from 'node:fs';", 'import node:fs'],
    ["import { getRunRuntime } from './composition';", 'import ./composition'],
    ['const now = Date.now();', 'Date.now()'],
    ['const t = new Date();', 'new Date() without an argument'],
    ['const r = Math.random();', 'Math.random'],
    ['const hub = process.env.DURABLE_TASK_HUB;', 'process.*'],
    ['setTimeout(() => 1, 10);', 'timers'],
    ['const x = await Promise.resolve(1);', 'async/await'],
  ])('catches a planted %s', (planted, expected) => {
    expect(violations(`${source}\n${planted}\n`)).toContain(expected);
  });
});
