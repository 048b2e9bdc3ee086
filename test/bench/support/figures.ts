import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Where bench files leave their figures; the global teardown merges them into latest.json. */
export const resultsDir = path.resolve(__dirname, '..', 'results');
export const partsDir = path.join(resultsDir, 'parts');

/** A bound a figure is reported against: on the value itself or on its ratio to the baseline. */
export interface Target {
  readonly on: 'value' | 'ratio';
  readonly min?: number;
  readonly max?: number;
}

export interface Figure {
  /** Plain dotted name, e.g. `redaction.secrets100.streamMBps`. */
  readonly name: string;
  /** null when the figure could not be measured; `unavailable` then says why. */
  readonly value: number | null;
  readonly unit: string;
  readonly baseline?: { readonly name: string; readonly value: number };
  /** value / baseline (for latencies, where lower is better, still value / baseline: a cost ratio). */
  readonly ratio?: number;
  readonly targets?: readonly Target[];
  /** Whether every target holds; absent when there is no target. */
  readonly met?: boolean;
  readonly note?: string;
  readonly unavailable?: string;
}

export interface FigureInput {
  readonly name: string;
  readonly value: number | null;
  readonly unit: string;
  readonly baseline?: { readonly name: string; readonly value: number };
  readonly targets?: readonly Target[];
  readonly note?: string;
  readonly unavailable?: string;
}

function holds(target: Target, value: number | null, ratio: number | undefined): boolean {
  const x = target.on === 'value' ? value : ratio;
  if (x === null || x === undefined || !Number.isFinite(x)) return false;
  return (target.min === undefined || x >= target.min) && (target.max === undefined || x <= target.max);
}

/** Fills in the ratio and whether the targets hold. */
export function figure(input: FigureInput): Figure {
  const ratio = input.baseline && input.value !== null && input.baseline.value > 0 ? input.value / input.baseline.value : undefined;
  const met = input.targets && input.targets.length > 0 ? input.targets.every((t) => holds(t, input.value, ratio)) : undefined;
  return { ...input, ...(ratio === undefined ? {} : { ratio }), ...(met === undefined ? {} : { met }) };
}

/** Collects one bench file's figures and writes them where the global teardown finds them. */
export class FigureSink {
  private readonly figures: Figure[] = [];

  constructor(private readonly part: string) {}

  add(input: FigureInput): Figure {
    const f = figure(input);
    this.figures.push(f);
    // Written after every figure so a later failure in the same file still leaves what was measured.
    mkdirSync(partsDir, { recursive: true });
    writeFileSync(path.join(partsDir, `${this.part}.json`), JSON.stringify(this.figures, null, 2));
    return f;
  }

  all(): readonly Figure[] {
    return this.figures;
  }
}

export function clearParts(): void {
  rmSync(partsDir, { recursive: true, force: true });
}

/** Every part written in this run, in the order of `order` (then any others by name). */
export function readParts(order: readonly string[]): Figure[] {
  let files: string[] = [];
  try {
    files = readdirSync(partsDir).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const rank = (f: string): number => {
    const i = order.indexOf(f.replace(/\.json$/, ''));
    return i < 0 ? order.length : i;
  };
  files.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return files.flatMap((f) => JSON.parse(readFileSync(path.join(partsDir, f), 'utf8')) as Figure[]);
}
