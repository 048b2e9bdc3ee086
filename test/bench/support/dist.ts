import { createRequire } from 'node:module';
import path from 'node:path';

const requireDist = createRequire(path.resolve(__dirname, '..', '..', '..', 'dist', 'index.js'));

/**
 * The compiled module under dist/ (npm run bench builds first), loaded by Node itself. Benchmarks measure
 * what ships: the same TypeScript run through vitest's module transform ran the redactor 3-7x slower, and
 * the SDK baselines load natively from node_modules, so both sides of a ratio must load the same way.
 */
export function fromDist<T>(modulePath: string): T {
  return requireDist(`./${modulePath}`) as T;
}

/** A package as the compiled code loads it (the CommonJS build), for baselines that must match it. */
export function packageForDist<T>(name: string): T {
  return requireDist(name) as T;
}
