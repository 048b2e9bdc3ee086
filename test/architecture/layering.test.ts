import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkFile, checkTree, orphans, projectRoot } from '../support/sourceImports';

const tscBin = path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc');
const scratch = mkdtempSync(path.join(projectRoot, '.planted-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function compileDomainWith(planted: string): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(scratch, 'domain-'));
  cpSync(path.join(projectRoot, 'domain'), path.join(dir, 'domain'), { recursive: true });
  cpSync(path.join(projectRoot, 'tsconfig.base.json'), path.join(dir, 'tsconfig.base.json'));
  writeFileSync(path.join(dir, 'domain', 'planted.ts'), planted);
  const result = spawnSync(process.execPath, [tscBin, '-p', path.join(dir, 'domain', 'tsconfig.json')], { encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('layering', () => {
  it('the real tree has no forbidden import', () => {
    expect(checkTree()).toEqual([]);
  });

  it('the domain compiles on its own, without Node types', () => {
    expect(compileDomainWith('export const fine = 1;\n')).toMatchObject({ status: 0 });
  });

  it('a planted process.env in domain/ fails to compile', () => {
    const result = compileDomainWith('export const leak = process.env.SECRET;\n');
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/Cannot find name 'process'/);
  });

  // Three whole-domain compiles: on a loaded two-core machine they outlast the default 60 s.
  it('a planted Buffer, timer or console in domain/ fails to compile', { timeout: 240_000 }, () => {
    for (const planted of ['export const b = Buffer.from("x");', 'setTimeout(() => 1, 1);', 'console.log(1);']) {
      expect(compileDomainWith(`${planted}\n`).status).not.toBe(0);
    }
  });

  it('a planted @azure/* or node:* import in domain/ is a violation', () => {
    const file = path.join(projectRoot, 'domain', 'planted.ts');
    expect(checkFile(file, "import { TableClient } from '@azure/data-tables';\n")).toHaveLength(1);
    expect(checkFile(file, "import { readFileSync } from 'node:fs';\n")).toHaveLength(1);
    expect(checkFile(file, "import { x } from '../infra/tables/x';\n")).toHaveLength(1);
    expect(checkFile(file, "const t = require('@azure/data-tables');\n")).toHaveLength(1);
    expect(checkFile(file, "import { DomainError } from './errors';\n")).toEqual([]);
  });

  it('child_process outside the allow-list is a violation', () => {
    const outside = path.join(projectRoot, 'infra', 'vault', 'sneaky.ts');
    expect(checkFile(outside, "import { spawn } from 'node:child_process';\n")[0]?.rule).toMatch(/guarded launcher/);
    expect(checkFile(outside, "const cp = await import('child_process');\n")).toHaveLength(1);
    const launcher = path.join(projectRoot, 'infra', 'sandbox', 'guardedLauncher.ts');
    expect(checkFile(launcher, "import { spawn } from 'node:child_process';\n")).toEqual([]);
  });

  it('an adapter importing a use case, or a feature file reading process.env, is a violation', () => {
    const adapter = path.join(projectRoot, 'infra', 'vault', 'sneaky.ts');
    expect(checkFile(adapter, "import { createWorkspace } from '../../domain/services/workspaces';\n")[0]?.rule).toMatch(/use case/);
    expect(checkFile(adapter, "import { onRun } from '../../domain/services/runStream';\n")).toEqual([]);
    // Once listed as exceptions (issue 13): the run steps and the queue's run starter are use cases like any other.
    const runs = path.join(projectRoot, 'infra', 'runs', 'sneaky.ts');
    expect(checkFile(runs, "import { seed } from '../../domain/services/runSteps';\n")[0]?.rule).toMatch(/use case/);
    expect(checkFile(runs, "import { startRunFromMessage } from '../../domain/services/runStarter';\n")[0]?.rule).toMatch(/use case/);
    const feature = path.join(projectRoot, 'functions', 'sneaky.ts');
    expect(checkFile(feature, 'export const schedule = process.env.SNEAKY_SCHEDULE;\n')[0]?.rule).toMatch(/settings\.ts/);
    expect(checkFile(path.join(projectRoot, 'functions', 'settings.ts'), 'export const env = process.env;\n')).toEqual([]);
  });

  it('every source file is reached from an entry point (the Functions app, the local host, the scripts)', () => {
    // Loaded by file name rather than an import (the local host's Durable extension), or a library for others.
    const notImported = [
      // A library for consumers of the events topic (docs/messaging.md), exercised by its tests.
      'infra/messaging/dedupingConsumer.ts',
      // The byte-stream redactor (docs/redaction.md), measured by the benchmarks; the host redacts strings today.
      'infra/redaction/redactingTransform.ts',
    ];
    expect(orphans(['domain', 'infra', 'functions', 'localhost']).filter((file) => !notImported.includes(file))).toEqual([]);
  });
});
