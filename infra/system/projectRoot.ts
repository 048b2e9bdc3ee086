import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The repository root: the nearest folder above `from` holding a package.json (from dist/infra/x that is three
 * levels up, from the sources two). Falls back to the working directory.
 */
export function findProjectRoot(from: string = __dirname): string {
  let dir = from;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
  return dir;
}
