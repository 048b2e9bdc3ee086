import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as catalogue from '../../domain/catalogue';
import { projectRoot } from '../support/sourceImports';

const CODE_LITERAL = /'[A-Z][A-Z_]*\.[A-Z][A-Z_]*'/g;

function domainFiles(dir = path.join(projectRoot, 'domain')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return domainFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

describe('the error catalogue', () => {
  it('is where every domain error code is written: no other domain file spells one out', () => {
    const spelled = domainFiles()
      .filter((file) => path.basename(file) !== 'catalogue.ts')
      .flatMap((file) => (readFileSync(file, 'utf8').match(CODE_LITERAL) ?? []).map((code) => `${path.relative(projectRoot, file)}: ${code}`));
    expect(spelled).toEqual([]);
  });

  it('names each code once, under its own area', () => {
    const groups = Object.entries(catalogue).filter(([name]) => name.endsWith('_ERROR')) as [string, Record<string, string>][];
    const codes = groups.flatMap(([group, entries]) => Object.entries(entries).map(([key, code]) => ({ group, key, code })));
    expect(new Set(codes.map((c) => c.code)).size).toBe(codes.length);
    for (const { group, key, code } of codes) expect(code).toBe(`${group.slice(0, -'_ERROR'.length)}.${key}`);
  });
});
