import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

export const projectRoot = path.resolve(__dirname, '..', '..');

export function listSourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d)) {
      if (entry === 'node_modules' || entry === 'dist') continue;
      const full = path.join(d, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (/\.(ts|mts|cts|js|mjs|cjs)$/.test(entry) && !entry.endsWith('.d.ts')) out.push(full);
    }
  };
  walk(dir);
  return out;
}

/** Every module specifier a file imports, requires or dynamically imports. */
export function importsOf(source: string): string[] {
  const info = ts.preProcessFile(source, true, true);
  const specifiers = info.importedFiles.map((f) => f.fileName);
  // preProcessFile misses require() calls whose result is not assigned at top level; catch those too.
  for (const match of source.matchAll(/\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) if (match[1]) specifiers.push(match[1]);
  return [...new Set(specifiers)];
}

export interface Violation {
  file: string;
  specifier: string;
  rule: string;
}

const CHILD_PROCESS = new Set(['child_process', 'node:child_process']);

/**
 * Files that may import node:child_process. The guarded launcher is the only production path to a sandbox
 * process; the local host starts Azurite and itself; test helpers start servers the tests talk to.
 */
export const childProcessAllowList: readonly string[] = [
  'infra/sandbox/guardedLauncher.ts',
  // The source of the launcher inside the Docker sandbox image (it runs in the container, behind the guarded
  // launcher's relay), and the image build, which runs ldd and tar on this machine's files, never a sandbox process.
  'infra/sandbox/docker/imageFiles.ts',
  'infra/sandbox/docker/sandboxImage.ts',
  'infra/localhost/',
  'scripts/',
  'test/support/',
];

function relative(file: string, root: string): string {
  return path.relative(root, file).split(path.sep).join('/');
}

/** Applies the layering rules of DESIGN.md §2 and STYLE.md to one file. */
export function checkFile(file: string, source: string, root = projectRoot): Violation[] {
  const rel = relative(file, root);
  const violations: Violation[] = [];
  for (const specifier of importsOf(source)) {
    const isRelative = specifier.startsWith('.');
    const target = isRelative ? relative(path.resolve(path.dirname(file), specifier), root) : specifier;
    if (rel.startsWith('domain/')) {
      if (!isRelative || !target.startsWith('domain/'))
        violations.push({ file: rel, specifier, rule: 'domain/ imports only domain/ (no packages, no node:*, no infra/ or functions/)' });
    }
    if (rel.startsWith('infra/') && isRelative && target.startsWith('functions/'))
      violations.push({ file: rel, specifier, rule: 'infra/ must not import functions/' });
    if (CHILD_PROCESS.has(specifier) && !childProcessAllowList.some((allowed) => rel === allowed || (allowed.endsWith('/') && rel.startsWith(allowed))))
      violations.push({ file: rel, specifier, rule: 'only the guarded launcher may import node:child_process' });
  }
  return violations;
}

export function checkTree(root = projectRoot): Violation[] {
  const files = ['domain', 'infra', 'functions', 'scripts'].flatMap((d) => {
    try {
      return listSourceFiles(path.join(root, d));
    } catch {
      return [];
    }
  });
  return files.flatMap((file) => checkFile(file, readFileSync(file, 'utf8'), root));
}
