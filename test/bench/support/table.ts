import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Figure, Target } from './figures';

function num(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

function targetText(t: Target, unit: string): string {
  const bound = t.min !== undefined && t.max !== undefined ? `${num(t.min)}..${num(t.max)}` : t.min !== undefined ? `>= ${num(t.min)}` : `<= ${num(t.max ?? 0)}`;
  return t.on === 'ratio' ? `ratio ${bound}` : `${bound} ${unit}`;
}

/** The one table `npm run bench` prints: figure, value, baseline, ratio, target. */
export function formatTable(figures: readonly Figure[]): string {
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'met'];
  const rows = figures.map((f) => [
    f.name,
    f.value === null ? `unavailable: ${f.unavailable ?? 'not measured'}` : `${num(f.value)} ${f.unit}`,
    f.baseline ? `${num(f.baseline.value)} (${f.baseline.name})` : '',
    f.ratio === undefined ? '' : `${num(f.ratio)}x`,
    (f.targets ?? []).map((t) => targetText(t, f.unit)).join('; '),
    f.met === undefined ? '' : f.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.min(r[i]!.length, 70))));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ').trimEnd();
  const notes = figures.filter((f) => f.note).map((f) => `  ${f.name}: ${f.note}`);
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...rows.map(line), '', 'Notes:', ...notes].join('\n');
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

function gitCommit(root: string): string | undefined {
  try {
    const head = readFileSync(`${root}/.git/HEAD`, 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    return readFileSync(`${root}/.git/${head.slice(5)}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** What the figures ran on: they mean little without it. */
export function machine(root: string): Record<string, unknown> {
  const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;
  return {
    nproc: os.availableParallelism(),
    cpuModel: cpuModel(),
    memTotal: gib(os.totalmem()),
    memFreeAtEnd: gib(os.freemem()),
    loadAverageAtEnd: os.loadavg().map((l) => Number(l.toFixed(2))),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    commit: gitCommit(root),
  };
}
