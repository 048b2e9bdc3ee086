import type { Figure, Target } from './figures';

function num(x: number): string {
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return Number.isInteger(x) ? String(x) : x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

function target(t: Target, unit: string): string {
  const bound = t.min !== undefined ? `≥ ${num(t.min)}` : `≤ ${num(t.max ?? 0)}`;
  return t.on === 'ratio' ? `ratio ${bound}` : `${bound} ${unit}`;
}

/** The figures as a Markdown table, for pasting into docs/performance.md. */
export function markdownTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => {
    const value = f.value === null ? `unavailable: ${f.unavailable ?? ''}` : `${num(f.value)} ${f.unit}`;
    const baseline = f.baseline ? `${num(f.baseline.value)} (\`${f.baseline.name}\`)` : '';
    const ratio = f.ratio === undefined ? '' : `${num(f.ratio)}×`;
    const targets = (f.targets ?? []).map((t) => target(t, f.unit)).join('; ');
    const met = f.met === undefined ? '' : f.met ? 'yes' : '**no**';
    return `| \`${f.name}\` | ${value} | ${baseline} | ${ratio} | ${targets} | ${met} |`;
  });
  return ['| figure | value | baseline | ratio | target | met |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
