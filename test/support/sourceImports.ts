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
  // Mounts and unmounts a sandbox workspace's size-limited tmpfs on this machine (mount/umount as root, fixed argv).
  'infra/sandbox/docker/workspaceStorage.ts',
  'localhost/',
  'scripts/',
  'test/support/',
];

/**
 * What `infra/` may import from `domain/services/`: each aggregate's bound handler and reader (`*Stream.ts`) and
 * the shared dependency and port types. Use cases are called by `functions/`, never by an adapter.
 */
export const infraMayImportFromServices: readonly string[] = [
  'domain/services/dependencies.ts',
  'domain/services/runPorts.ts',
  'domain/services/projections.ts',
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
    if (rel.startsWith('infra/') && isRelative && target.startsWith('domain/services/') && !/Stream$/.test(target) && !infraMayImportFromServices.includes(`${target}.ts`))
      violations.push({ file: rel, specifier, rule: 'infra/ must not import a use case (domain/services/); functions/ wires use cases to adapters' });
    if (CHILD_PROCESS.has(specifier) && !childProcessAllowList.some((allowed) => rel === allowed || (allowed.endsWith('/') && rel.startsWith(allowed))))
      violations.push({ file: rel, specifier, rule: 'only the guarded launcher may import node:child_process' });
  }
  if (rel.startsWith('functions/') && rel !== 'functions/settings.ts' && /\bprocess\.env\b/.test(source))
    violations.push({ file: rel, specifier: 'process.env', rule: 'functions/ reads the environment only in functions/settings.ts' });
  return violations;
}

export function checkTree(root = projectRoot): Violation[] {
  const files = ['domain', 'infra', 'functions', 'localhost', 'scripts'].flatMap((d) => {
    try {
      return listSourceFiles(path.join(root, d));
    } catch {
      return [];
    }
  });
  return files.flatMap((file) => checkFile(file, readFileSync(file, 'utf8'), root));
}

/** The app's entry points: the Functions app (package.json `main`) and the modules `scripts/*.js` load from dist/. */
export function entryPoints(root = projectRoot): string[] {
  const entries = new Set(['functions/index.ts']);
  for (const script of listSourceFiles(path.join(root, 'scripts'))) {
    for (const match of readFileSync(script, 'utf8').matchAll(/path\.join\(root, 'dist', ((?:'[^']+'(?:, )?)+)\)/g)) {
      const parts = [...(match[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1] ?? '');
      entries.add(parts.join('/').replace(/\.js$/, '.ts'));
    }
  }
  return [...entries];
}

function resolveSource(fromRel: string, specifier: string, root: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = relative(path.resolve(root, path.dirname(fromRel), specifier), root).replace(/\.js$/, '');
  for (const candidate of [`${base}.ts`, `${base}/index.ts`, base]) {
    try {
      if (statSync(path.join(root, candidate)).isFile()) return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}

/** Source files of the given folders that no entry point reaches through imports: dead code, or a test's only. */
export function orphans(folders: readonly string[], root = projectRoot): string[] {
  const reached = new Set<string>();
  const pending = entryPoints(root);
  while (pending.length > 0) {
    const file = pending.pop() ?? '';
    if (reached.has(file)) continue;
    reached.add(file);
    let source: string;
    try {
      source = readFileSync(path.join(root, file), 'utf8');
    } catch {
      continue;
    }
    for (const specifier of importsOf(source)) {
      const target = resolveSource(file, specifier, root);
      if (target && !reached.has(target)) pending.push(target);
    }
    // A module loaded by file name (the local host's Durable extension): path.join(__dirname, 'durable', 'x.js').
    for (const match of source.matchAll(/path\.join\(__dirname, ((?:'[^']+'(?:, )?)+)\)/g)) {
      const parts = [...(match[1] ?? '').matchAll(/'([^']+)'/g)].map((m) => m[1] ?? '');
      if (parts.at(-1)?.endsWith('.js')) {
        const target = resolveSource(file, `./${parts.join('/')}`, root);
        if (target && !reached.has(target)) pending.push(target);
      }
    }
  }
  return folders
    .flatMap((folder) => {
      try {
        return listSourceFiles(path.join(root, folder));
      } catch {
        return [];
      }
    })
    .map((file) => relative(file, root))
    .filter((file) => file.endsWith('.ts') && !reached.has(file));
}
