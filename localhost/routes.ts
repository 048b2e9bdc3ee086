/**
 * HTTP route templates as the Functions host (ASP.NET routing) reads them: literal segments matched
 * case-insensitively, `{name}` parameters, optional `{name?}`, catch-all `{*rest}`, and inline constraints
 * (`{id:int}`, `{name:alpha}`, `{x:regex(...)}`). Constraints the host knows are checked; unknown ones are
 * accepted rather than failing the route.
 */

type Segment =
  | { kind: 'literal'; text: string }
  | { kind: 'param'; name: string; optional: boolean; catchAll: boolean; constraints: string[] };

export interface CompiledRoute {
  readonly template: string;
  readonly segments: readonly Segment[];
}

const KNOWN_CONSTRAINTS: Record<string, (value: string) => boolean> = {
  int: (v) => /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v)),
  long: (v) => /^-?\d+$/.test(v),
  bool: (v) => /^(true|false)$/i.test(v),
  alpha: (v) => /^[a-z]+$/i.test(v),
  guid: (v) => /^\{?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}?$/i.test(v),
  double: (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  decimal: (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  float: (v) => v.trim() !== '' && Number.isFinite(Number(v)),
};

function checkConstraint(constraint: string, value: string): boolean {
  const known = KNOWN_CONSTRAINTS[constraint.toLowerCase()];
  if (known) return known(value);
  const regex = /^regex\((.*)\)$/i.exec(constraint);
  if (regex?.[1] !== undefined) {
    try {
      return new RegExp(regex[1], 'i').test(value);
    } catch {
      return true;
    }
  }
  const arg = /^(minlength|maxlength|length|min|max)\((\d+)\)$/i.exec(constraint);
  if (arg?.[1] && arg[2]) {
    const n = Number(arg[2]);
    switch (arg[1].toLowerCase()) {
      case 'minlength': return value.length >= n;
      case 'maxlength': return value.length <= n;
      case 'length': return value.length === n;
      case 'min': return Number(value) >= n;
      case 'max': return Number(value) <= n;
    }
  }
  return true;
}

/** Splits `a:int:min(1)` into constraints while keeping `regex(a:b)` whole. */
function splitConstraints(spec: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of spec) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ':' && depth === 0) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  out.push(current);
  return out.filter((c) => c !== '');
}

export function compileRoute(template: string): CompiledRoute {
  const segments = template
    .split('/')
    .filter((s) => s !== '')
    .map((raw): Segment => {
      const param = /^\{(.+)\}$/.exec(raw);
      if (!param?.[1]) return { kind: 'literal', text: raw.toLowerCase() };
      let body = param[1];
      const catchAll = body.startsWith('*');
      if (catchAll) body = body.replace(/^\*+/, '');
      const colon = body.indexOf(':');
      let name = colon >= 0 ? body.slice(0, colon) : body;
      const constraints = colon >= 0 ? splitConstraints(body.slice(colon + 1)) : [];
      let optional = catchAll;
      if (name.endsWith('?')) {
        optional = true;
        name = name.slice(0, -1);
      }
      const last = constraints[constraints.length - 1];
      if (last?.endsWith('?')) {
        optional = true;
        constraints[constraints.length - 1] = last.slice(0, -1);
      }
      const defaultAt = name.indexOf('=');
      if (defaultAt >= 0) {
        name = name.slice(0, defaultAt);
        optional = true;
      }
      return { kind: 'param', name, optional, catchAll, constraints };
    });
  return { template, segments };
}

/** Matches decoded path segments (after the route prefix); returns the parameters or undefined. */
export function matchRoute(route: CompiledRoute, pathSegments: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  let i = 0;
  for (const segment of route.segments) {
    const value = pathSegments[i];
    if (segment.kind === 'literal') {
      if (value === undefined || value.toLowerCase() !== segment.text) return undefined;
      i++;
      continue;
    }
    if (segment.catchAll) {
      const rest = pathSegments.slice(i).join('/');
      if (rest !== '') params[segment.name] = rest;
      i = pathSegments.length;
      continue;
    }
    if (value === undefined) {
      if (!segment.optional) return undefined;
      continue;
    }
    if (!segment.constraints.every((c) => checkConstraint(c, value))) return undefined;
    params[segment.name] = value;
    i++;
  }
  return i === pathSegments.length ? params : undefined;
}

/** Orders routes as ASP.NET does in effect: literals before parameters before catch-alls, segment by segment. */
export function routePrecedence(a: CompiledRoute, b: CompiledRoute): number {
  const rank = (s: Segment | undefined): number => (s === undefined ? 3 : s.kind === 'literal' ? 0 : s.catchAll ? 2 : s.constraints.length > 0 ? 0.5 : 1);
  const n = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const diff = rank(a.segments[i]) - rank(b.segments[i]);
    if (diff !== 0) return diff;
  }
  return 0;
}
