import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { clearParts, readParts, resultsDir } from './figures';
import { markdownTable } from './markdown';
import { formatTable, machine } from './table';

/** Order of the sections in the table and in latest.json. */
const PART_ORDER = ['redaction', 'redactionWorstCase', 'eventAppend', 'leases', 'runs', 'teardown'];

/**
 * Clears what an earlier run left; after every bench file has run, merges their figures into one table on
 * stdout and test/bench/results/latest.json. Benchmarks report; nothing here fails on a missed target.
 */
export default function setup(): () => void {
  clearParts();
  const started = new Date();
  // Other work on the machine skews every figure; say how busy it was.
  const loadAtStart = os.loadavg().map((l) => Number(l.toFixed(2)));
  return () => {
    const figures = readParts(PART_ORDER);
    const root = path.resolve(__dirname, '..', '..', '..');
    mkdirSync(resultsDir, { recursive: true });
    const report = {
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      durationSeconds: Math.round((Date.now() - started.getTime()) / 1000),
      machine: { ...machine(root), loadAverageAtStart: loadAtStart },
      figures: Object.fromEntries(figures.map(({ name, ...rest }) => [name, rest])),
    };
    writeFileSync(path.join(resultsDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(path.join(resultsDir, 'latest.md'), `${markdownTable(figures)}\n`);
    console.log(`\n${formatTable(figures)}\n\nWritten to ${path.relative(root, path.join(resultsDir, 'latest.json'))} (and latest.md) (${report.durationSeconds} s).`);
  };
}
