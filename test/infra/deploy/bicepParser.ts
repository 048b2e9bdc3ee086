/**
 * A small reader for the subset of Bicep that infra/deploy uses, because the Bicep compiler cannot be installed
 * here (its install downloads a binary). It tokenises (strings with `${}` interpolation, comments, brackets),
 * fails on unbalanced brackets or unterminated strings, and parses declarations into plain trees so the tests
 * can check properties by path instead of by regular expression over text.
 */

export interface Token {
  readonly kind: 'ident' | 'string' | 'number' | 'punct' | 'nl';
  readonly text: string;
  readonly line: number;
  /** For strings: the literal value when there is no interpolation. */
  readonly value?: string;
  readonly interpolated?: boolean;
  /** For interpolated strings: identifiers used inside `${...}` (not member names after a dot). */
  readonly uses?: readonly string[];
}

export type BicepValue =
  | { readonly kind: 'object'; readonly entries: ReadonlyMap<string, BicepValue>; readonly line: number }
  | { readonly kind: 'array'; readonly items: readonly BicepValue[]; readonly line: number }
  | { readonly kind: 'string'; readonly value: string; readonly line: number }
  | { readonly kind: 'expr'; readonly text: string; readonly line: number };

export interface Declaration {
  readonly keyword: 'param' | 'var' | 'resource' | 'module' | 'output' | 'import' | 'targetScope' | 'type' | 'func' | 'metadata';
  readonly name: string;
  readonly line: number;
  readonly decorators: readonly string[];
  /** resource: `type@apiVersion`; module/import: the path; param/output: the type. */
  readonly target?: string;
  readonly existing?: boolean;
  readonly condition?: string;
  /**
   * A resource or module declared once per item (`= [for <binding> in <collection>: { ... }]`): the header's
   * source form, e.g. `( name , i ) in groupNames`; `value` is then the body every copy shares.
   */
  readonly loop?: string;
  readonly value?: BicepValue;
}

export interface BicepFile {
  readonly path: string;
  readonly declarations: readonly Declaration[];
  /** Identifiers used as values (not object keys, declaration names or member names after a dot). */
  readonly usedIdentifiers: ReadonlySet<string>;
}

export class BicepSyntaxError extends Error {
  override readonly name = 'BicepSyntaxError';
}

const PUNCT_2 = ['==', '!=', '>=', '<=', '&&', '||', '??', '=~', '!~'];
const CLOSE: Record<string, string> = { '}': '{', ']': '[', ')': '(' };

export function tokenize(source: string, path = '<source>'): Token[] {
  const tokens: Token[] = [];
  const stack: { char: string; line: number }[] = [];
  let i = 0;
  let line = 1;
  const fail = (message: string, at = line): never => {
    throw new BicepSyntaxError(`${path}:${at}: ${message}`);
  };
  while (i < source.length) {
    const c = source[i] as string;
    if (c === '\n') {
      tokens.push({ kind: 'nl', text: '\n', line });
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (source.startsWith('//', i)) {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (source.startsWith('/*', i)) {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) fail('unterminated block comment');
      for (let k = i; k < end; k++) if (source[k] === '\n') line++;
      i = end + 2;
    } else if (source.startsWith("'''", i)) {
      const end = source.indexOf("'''", i + 3);
      if (end < 0) fail('unterminated multi-line string');
      const value = source.slice(i + 3, end);
      tokens.push({ kind: 'string', text: source.slice(i, end + 3), line, value, interpolated: false });
      line += value.split('\n').length - 1;
      i = end + 3;
    } else if (c === "'") {
      const start = i;
      const startLine = line;
      let value = '';
      let interpolated = false;
      const uses: string[] = [];
      i++;
      for (;;) {
        if (i >= source.length || source[i] === '\n') fail('unterminated string', startLine);
        const d = source[i] as string;
        if (d === '\\') {
          const next = source[i + 1] ?? '';
          value += next === 'n' ? '\n' : next === 't' ? '\t' : next;
          i += 2;
        } else if (d === "'") {
          i++;
          break;
        } else if (d === '$' && source[i + 1] === '{') {
          interpolated = true;
          const close = matchInterpolation(source, i + 2, () => fail('unterminated interpolation', startLine));
          uses.push(...identifiersIn(tokenize(source.slice(i + 2, close), path)));
          value += source.slice(i, close + 1);
          i = close + 1;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push({ kind: 'string', text: source.slice(start, i), line: startLine, value, interpolated, uses });
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'ident', text: m[0], line });
      i += m[0].length;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+/.exec(source.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'number', text: m[0], line });
      i += m[0].length;
    } else {
      const two = source.slice(i, i + 2);
      const text = PUNCT_2.includes(two) ? two : c;
      if ('{[('.includes(text)) stack.push({ char: text, line });
      if ('}])'.includes(text)) {
        const open = stack.pop();
        if (!open || open.char !== CLOSE[text]) fail(`unbalanced '${text}'${open ? ` (opened '${open.char}' on line ${open.line})` : ''}`);
      }
      tokens.push({ kind: 'punct', text, line });
      i += text.length;
    }
  }
  const open = stack.pop();
  if (open) fail(`'${open.char}' is never closed`, open.line);
  return tokens;
}

/** The index of the `}` closing an interpolation that starts at `from`, skipping nested braces and strings. */
function matchInterpolation(source: string, from: number, onFail: () => never): number {
  let depth = 0;
  for (let k = from; k < source.length; k++) {
    const d = source[k];
    if (d === "'") {
      k++;
      while (k < source.length && source[k] !== "'") k += source[k] === '\\' ? 2 : 1;
    } else if (d === '{') depth++;
    else if (d === '}') {
      if (depth === 0) return k;
      depth--;
    } else if (d === '\n') onFail();
  }
  return onFail();
}

const KEYWORDS = new Set(['param', 'var', 'resource', 'module', 'output', 'import', 'targetScope', 'type', 'func', 'metadata']);

export function parseBicep(source: string, path = '<source>'): BicepFile {
  const used = new Set<string>();
  const p = new Parser(tokenize(source, path), path, used);
  return { path, declarations: p.declarations(), usedIdentifiers: used };
}

/** Identifiers used as values: not member names after a dot; strings contribute their interpolations. */
function identifiersIn(tokens: readonly Token[]): string[] {
  const out: string[] = [];
  tokens.forEach((t, k) => {
    const prev = tokens[k - 1];
    if (t.kind === 'ident' && !(prev?.kind === 'punct' && prev.text === '.')) out.push(t.text);
    if (t.kind === 'string') out.push(...(t.uses ?? []));
  });
  return out;
}

class Parser {
  private i = 0;
  constructor(
    private readonly tokens: readonly Token[],
    private readonly path: string,
    private readonly used: Set<string>,
  ) {}

  declarations(): Declaration[] {
    const out: Declaration[] = [];
    let decorators: string[] = [];
    for (;;) {
      this.skipNewlines();
      const t = this.peek();
      if (!t) return out;
      if (t.kind === 'punct' && t.text === '@') {
        decorators.push(this.rawUntilNewline());
        continue;
      }
      if (t.kind !== 'ident' || !KEYWORDS.has(t.text)) this.fail(`unexpected '${t.text}' at top level`);
      out.push(this.declaration(decorators));
      decorators = [];
    }
  }

  private declaration(decorators: string[]): Declaration {
    const keyword = this.next().text as Declaration['keyword'];
    const line = this.tokens[this.i - 1]?.line ?? 0;
    if (keyword === 'targetScope') {
      this.expect('=');
      return { keyword, name: 'targetScope', line, decorators, value: this.value() };
    }
    if (keyword === 'import' || keyword === 'type' || keyword === 'func' || keyword === 'metadata') {
      const raw = this.rawUntilNewline();
      const from = /from\s+'([^']+)'/.exec(raw);
      return { keyword, name: raw, line, decorators, ...(from?.[1] ? { target: from[1] } : {}) };
    }
    const name = this.next().text;
    if (keyword === 'var') {
      this.expect('=');
      return { keyword, name, line, decorators, value: this.value() };
    }
    if (keyword === 'param' || keyword === 'output') {
      const type: string[] = [];
      while (this.peek() && !this.isPunct('=') && this.peek()?.kind !== 'nl') type.push(this.next().text);
      const hasValue = this.isPunct('=');
      if (hasValue) this.next();
      return { keyword, name, line, decorators, target: type.join(' '), ...(hasValue ? { value: this.value() } : {}) };
    }
    const target = this.next();
    if (target.kind !== 'string') this.fail(`${keyword} ${name} needs a quoted type or path`);
    const existing = this.peek()?.text === 'existing';
    if (existing) this.next();
    this.expect('=');
    let loop: string | undefined;
    if (this.isPunct('[') && this.peekAfterNewlines(1)?.text === 'for') {
      this.next();
      this.skipNewlines();
      this.next();
      loop = this.rawUntilColon();
      this.skipNewlines();
    }
    let condition: string | undefined;
    if (this.peek()?.text === 'if') {
      this.next();
      condition = this.rawGroup();
    }
    const value = this.value();
    if (loop !== undefined) {
      this.skipNewlines();
      this.expect(']');
    }
    return { keyword, name, line, decorators, target: target.value ?? target.text, existing, ...(loop !== undefined ? { loop } : {}), ...(condition ? { condition } : {}), value };
  }

  private value(): BicepValue {
    const t = this.peek();
    if (!t) this.fail('missing value');
    const line = (t as Token).line;
    if (this.isPunct('{')) {
      this.next();
      const entries = new Map<string, BicepValue>();
      for (;;) {
        while (this.peek()?.kind === 'nl' || this.isPunct(',')) this.next();
        if (this.isPunct('}')) {
          this.next();
          return { kind: 'object', entries, line };
        }
        const key = this.next();
        if (key.kind !== 'ident' && key.kind !== 'string') this.fail(`object key expected, found '${key.text}'`);
        this.expect(':');
        const name = key.value ?? key.text;
        if (entries.has(name)) this.fail(`duplicate key '${name}'`);
        entries.set(name, this.value());
      }
    }
    if (this.isPunct('[') && this.peekAfterNewlines(1)?.text !== 'for') {
      this.next();
      const items: BicepValue[] = [];
      for (;;) {
        while (this.peek()?.kind === 'nl' || this.isPunct(',')) this.next();
        if (this.isPunct(']')) {
          this.next();
          return { kind: 'array', items, line };
        }
        items.push(this.value());
      }
    }
    const parts: Token[] = [];
    let depth = 0;
    for (;;) {
      const u = this.peek();
      if (!u) break;
      if (depth === 0 && (u.kind === 'nl' || (u.kind === 'punct' && [',', '}', ']'].includes(u.text)))) break;
      if (u.kind === 'nl' && depth > 0) {
        this.next();
        continue;
      }
      if (u.kind === 'punct' && '{[('.includes(u.text)) depth++;
      if (u.kind === 'punct' && '}])'.includes(u.text)) depth--;
      parts.push(this.next());
    }
    if (parts.length === 0) this.fail('missing value');
    for (const name of identifiersIn(parts)) this.used.add(name);
    const only = parts[0] as Token;
    if (parts.length === 1 && only.kind === 'string' && !only.interpolated) return { kind: 'string', value: only.value ?? '', line };
    return { kind: 'expr', text: parts.map((p) => p.text).join(' ').replace(/ \. /g, '.').replace(/ \( /g, '(').replace(/ \)/g, ')'), line };
  }

  private rawGroup(): string {
    const parts: string[] = [];
    let depth = 0;
    do {
      const t = this.next();
      if (t.kind === 'punct' && t.text === '(') depth++;
      if (t.kind === 'punct' && t.text === ')') depth--;
      for (const name of identifiersIn([t])) this.used.add(name);
      parts.push(t.text);
    } while (depth > 0);
    return parts.join(' ');
  }

  /** A loop header up to its `:` (outside brackets), its identifiers counted as used. */
  private rawUntilColon(): string {
    const parts: Token[] = [];
    let depth = 0;
    while (this.peek() && (depth > 0 || !this.isPunct(':'))) {
      const t = this.next();
      if (t.kind === 'punct' && '{[('.includes(t.text)) depth++;
      if (t.kind === 'punct' && '}])'.includes(t.text)) depth--;
      parts.push(t);
    }
    this.expect(':');
    for (const name of identifiersIn(parts)) this.used.add(name);
    return parts.map((p) => p.text).join(' ');
  }

  private rawUntilNewline(): string {
    const parts: string[] = [];
    let depth = 0;
    while (this.peek() && (depth > 0 || this.peek()?.kind !== 'nl')) {
      const t = this.next();
      if (t.kind === 'punct' && '{[('.includes(t.text)) depth++;
      if (t.kind === 'punct' && '}])'.includes(t.text)) depth--;
      parts.push(t.text);
    }
    return parts.join(' ');
  }

  private skipNewlines(): void {
    while (this.peek()?.kind === 'nl') this.next();
  }
  private peek(): Token | undefined {
    return this.tokens[this.i];
  }
  private peekAfterNewlines(offset: number): Token | undefined {
    let k = this.i + offset;
    while (this.tokens[k]?.kind === 'nl') k++;
    return this.tokens[k];
  }
  private isPunct(text: string): boolean {
    const t = this.peek();
    return t?.kind === 'punct' && t.text === text;
  }
  private next(): Token {
    const t = this.tokens[this.i++];
    if (!t) this.fail('unexpected end of file');
    return t as Token;
  }
  private expect(text: string): void {
    const t = this.next();
    if (t.text !== text) this.fail(`expected '${text}', found '${t.text}'`, t.line);
  }
  private fail(message: string, line = this.peek()?.line ?? this.tokens[this.tokens.length - 1]?.line ?? 0): never {
    throw new BicepSyntaxError(`${this.path}:${line}: ${message}`);
  }
}

/** The value at a dotted path inside an object value, or undefined. */
export function at(value: BicepValue | undefined, path: string): BicepValue | undefined {
  let current = value;
  for (const key of path.split('.')) {
    if (current?.kind !== 'object') return undefined;
    current = current.entries.get(key);
  }
  return current;
}

/** A scalar's source form: strings as their value, everything else as its expression text. */
export function scalar(value: BicepValue | undefined): string | undefined {
  if (value?.kind === 'string') return value.value;
  if (value?.kind === 'expr') return value.text;
  return undefined;
}
