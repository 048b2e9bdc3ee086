import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { LocalHostConfigError } from './problems';

const packageJsonSchema = z.object({ main: z.string().min(1), type: z.string().optional(), name: z.string().optional() });

function segmentPattern(segment: string): RegExp {
  const escaped = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${escaped}$`);
}

/** Expands a `main` value such as `dist/functions/*.js` or `dist/**\/*.js` (Node 20 has no fs.glob). */
export function expandGlob(appDir: string, pattern: string): string[] {
  const segments = pattern.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  const results: string[] = [];
  const walk = (dir: string, rest: readonly string[]): void => {
    const [head, ...tail] = rest;
    if (head === undefined) {
      if (existsSync(dir) && statSync(dir).isFile()) results.push(dir);
      return;
    }
    if (head === '**') {
      walk(dir, tail);
      for (const entry of safeReaddir(dir)) {
        const full = path.join(dir, entry);
        if (entry !== 'node_modules' && statSync(full).isDirectory()) walk(full, rest);
      }
      return;
    }
    if (!/[*?]/.test(head)) {
      walk(path.join(dir, head), tail);
      return;
    }
    const matcher = segmentPattern(head);
    for (const entry of safeReaddir(dir)) if (matcher.test(entry)) walk(path.join(dir, entry), tail);
  };
  walk(appDir, segments);
  return [...new Set(results)].sort();
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export interface EntryPoints {
  /** The app's package.json `name`, else its folder's name: what the banner calls the app. */
  readonly appName: string;
  readonly files: readonly string[];
  /** The app's package.json says `"type": "module"`: its `.js` files are ES modules. */
  readonly esm: boolean;
}

/** The entry point files named by the app's package.json `main`, resolved against the app folder. */
export function appEntryPoints(appDir: string): EntryPoints {
  const packagePath = path.join(appDir, 'package.json');
  if (!existsSync(packagePath)) throw new LocalHostConfigError(`${packagePath} does not exist; --app must name a Functions app folder.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(packagePath, 'utf8'));
  } catch {
    throw new LocalHostConfigError(`${packagePath} is not valid JSON.`);
  }
  const result = packageJsonSchema.safeParse(parsed);
  if (!result.success) throw new LocalHostConfigError(`${packagePath} has no "main" naming the app's entry point(s).`);
  const files = expandGlob(appDir, result.data.main);
  if (files.length === 0)
    throw new LocalHostConfigError(`package.json "main" (${result.data.main}) matches no file in ${appDir}; run \`npm run build\`?`);
  return { appName: result.data.name ?? path.basename(path.resolve(appDir)), files, esm: result.data.type === 'module' };
}

/** As the Node.js worker decides: `.mjs`, or `.js` in a `"type": "module"` app, is an ES module. */
const isEsModule = (file: string, esm: boolean): boolean => file.endsWith('.mjs') || (esm && file.endsWith('.js'));

/**
 * Loads every entry point, in order; their module-level `app.*` calls register functions with the supplied
 * core. ES modules load through `import()`, which settles only after a top-level await has; CommonJS files
 * load through `require`, as the Node.js worker loads them.
 */
export async function loadEntryPoints(entryPoints: EntryPoints): Promise<void> {
  for (const file of entryPoints.files) {
    if (isEsModule(file, entryPoints.esm)) await import(pathToFileURL(file).href);
    else require(file);
  }
}
