import {
  BASE64_STANDARD,
  BASE64_URL,
  asciiBytes,
  base64,
  base64Core,
  base64Padded,
  codePoints,
  hex2,
  hex4,
  hexOf,
  utf8Bytes,
  utf8Length,
} from './bytes';
import { MIN_SECRET_BYTES } from '../secret';

/**
 * Every way a secret value is likely to be spelled in output: the forms common encoders of JSON, XML/HTML,
 * URIs, base64 and backslash-escaped strings produce for it. Each variant applies one encoder's rules to
 * the whole value, so the count grows with the number of encoders, not with the value's length; for a
 * plain alphanumeric token most variants coincide and collapse to a handful of distinct strings.
 */

interface JsonRules {
  asciiOnly?: boolean;
  upper?: boolean;
  escapeSlash?: boolean;
  /** Go's encoding/json: <, > and & as \u escapes, plus U+2028/2029. */
  htmlSafe?: boolean;
  /** .NET System.Text.Json's default encoder: also " ' + ` as \u escapes. */
  dotnet?: boolean;
}

const JSON_SHORT: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };

export function jsonEscape(value: string, rules: JsonRules = {}): string {
  const u = (unit: number): string => `\\u${hex4(unit, rules.upper === true)}`;
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22) out += rules.dotnet ? u(c) : '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x2f) out += rules.escapeSlash ? '\\/' : '/';
    else if (c < 0x20) out += JSON_SHORT[c] ?? u(c);
    else if ((rules.htmlSafe || rules.dotnet) && (c === 0x3c || c === 0x3e || c === 0x26)) out += u(c);
    else if (rules.dotnet && (c === 0x27 || c === 0x2b || c === 0x60)) out += u(c);
    else if (rules.htmlSafe && (c === 0x2028 || c === 0x2029)) out += u(c);
    else if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      const paired = c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff;
      if (!paired) out += u(c); // well-formed JSON.stringify escapes lone surrogates
      else {
        out += rules.asciiOnly || rules.dotnet ? u(c) + u(next) : value.slice(i, i + 2);
        i++;
      }
    } else if (c >= 0x7f && (rules.asciiOnly || rules.dotnet) && (c >= 0x80 || rules.dotnet)) out += u(c);
    else out += value[i];
  }
  return out;
}

const JSON_VARIANTS: readonly JsonRules[] = [
  {},
  { asciiOnly: true },
  { asciiOnly: true, upper: true },
  { escapeSlash: true },
  { escapeSlash: true, asciiOnly: true },
  { htmlSafe: true },
  { dotnet: true, upper: true },
];

type Numeric = 'dec' | 'hexUpper' | 'hexLower';

interface XmlRules {
  quot?: string;
  apos?: string;
  /** Non-ASCII characters and control characters written as numeric character references. */
  numeric?: Numeric;
  /** Only tab, LF and CR as numeric references (Go's xml.EscapeText). */
  controlsOnly?: boolean;
}

function numericRef(cp: number, style: Numeric): string {
  if (style === 'dec') return `&#${cp};`;
  const h = cp.toString(16);
  return `&#x${style === 'hexUpper' ? h.toUpperCase() : h};`;
}

export function xmlEscape(value: string, rules: XmlRules): string {
  let out = '';
  for (const cp of codePoints(value)) {
    if (cp === 0x26) out += '&amp;';
    else if (cp === 0x3c) out += '&lt;';
    else if (cp === 0x3e) out += '&gt;';
    else if (cp === 0x22 && rules.quot) out += rules.quot;
    else if (cp === 0x27 && rules.apos) out += rules.apos;
    else if (rules.numeric && cp < 0x20) out += numericRef(cp, rules.numeric);
    else if (rules.numeric && cp >= 0x80 && !rules.controlsOnly) out += numericRef(cp, rules.numeric);
    else out += String.fromCodePoint(cp);
  }
  return out;
}

const XML_VARIANTS: readonly XmlRules[] = [
  { quot: '&quot;', apos: '&apos;' },
  {},
  { quot: '&quot;', apos: '&#39;' },
  { quot: '&#34;', apos: '&#39;' },
  { quot: '&#34;', apos: '&#39;', numeric: 'hexUpper', controlsOnly: true },
  { quot: '&quot;', apos: '&#x27;' },
  { quot: '&quot;', apos: '&#039;' },
  // Attribute values in double quotes (.NET XmlWriter, StAX): only " escaped, newlines as references.
  { quot: '&quot;' },
  { quot: '&quot;', numeric: 'hexUpper', controlsOnly: true },
  { quot: '&quot;', apos: '&apos;', numeric: 'dec' },
  { quot: '&quot;', apos: '&apos;', numeric: 'hexUpper' },
  { quot: '&quot;', apos: '&apos;', numeric: 'hexLower' },
];

const BACKSLASH_MAP: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\t': '\\t', '\r': '\\r' };

export function backslashEscape(value: string, quotes: '"' | "'" | `"'`): string {
  let out = '';
  for (const ch of value) out += BACKSLASH_MAP[ch] ?? (quotes.includes(ch) ? `\\${ch}` : ch);
  return out;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

interface PercentRules {
  safe: string;
  spaceAsPlus: boolean;
}

/**
 * encodeURIComponent, encodeURI, WHATWG form encoding, RFC 3986 unreserved (Python quote, Go QueryEscape),
 * PHP urlencode, and every byte escaped (what a "URL-encode everything" tool or a hex-to-%XX pipe writes).
 */
const PERCENT_VARIANTS: readonly PercentRules[] = [
  { safe: '', spaceAsPlus: false },
  { safe: `${ALNUM}-_.!~*'()`, spaceAsPlus: false },
  { safe: `${ALNUM}-_.!~*'()`, spaceAsPlus: true },
  { safe: `${ALNUM}-_.!~*'();,/?:@&=+$#`, spaceAsPlus: false },
  { safe: `${ALNUM}*-._`, spaceAsPlus: true },
  { safe: `${ALNUM}-._~`, spaceAsPlus: false },
  { safe: `${ALNUM}-._~`, spaceAsPlus: true },
  { safe: `${ALNUM}-_.`, spaceAsPlus: true },
];

export function percentEncode(bytes: readonly number[], rules: PercentRules, upper: boolean): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x20 && rules.spaceAsPlus) out += '+';
    else if (b < 0x80 && rules.safe.includes(String.fromCharCode(b))) out += String.fromCharCode(b);
    else out += `%${hex2(b, upper)}`;
  }
  return out;
}

const ESCAPE_SAFE = `${ALNUM}@*_+-./`;

/** JavaScript's legacy `escape()`: %XX for code units below 256, %uXXXX above, upper-case hex. */
export function legacyEscape(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x80 && ESCAPE_SAFE.includes(value[i]!)) out += value[i]!;
    else if (c < 0x100) out += `%${hex2(c, true)}`;
    else out += `%u${hex4(c, true)}`;
  }
  return out;
}

/**
 * Base64 of base64 (a Kubernetes secret manifest, a header encoded twice): the inner encoding at each of its
 * three alignments, each encoded again at each of three alignments, stable characters only. A core of an
 * inner text is a substring of any larger inner text holding it, so these are substrings of the double
 * encoding of anything that holds the value.
 */
function doubleBase64Cores(bytes: readonly number[], into: Set<string>): void {
  for (const inner of [0, 1, 2] as const) {
    const once = asciiBytes(base64Core(bytes, inner, BASE64_STANDARD));
    for (const outer of [0, 1, 2] as const) into.add(base64Core(once, outer, BASE64_STANDARD));
  }
}

/** The encoded spellings of one string (the whole value or one of its lines). */
function formsOf(value: string, into: Set<string>): void {
  into.add(value);
  for (const rules of JSON_VARIANTS) into.add(jsonEscape(value, rules));
  into.add(jsonEscape(jsonEscape(value))); // JSON embedded in a JSON string, as logged request bodies often are
  for (const rules of XML_VARIANTS) into.add(xmlEscape(value, rules));
  into.add(backslashEscape(value, `"'`));
  into.add(backslashEscape(value, '"'));
  into.add(backslashEscape(value, "'"));
  into.add(legacyEscape(value));
  const bytes = utf8Bytes(value);
  into.add(hexOf(bytes, false));
  into.add(hexOf(bytes, true));
  for (const rules of PERCENT_VARIANTS) {
    into.add(percentEncode(bytes, rules, true));
    into.add(percentEncode(bytes, rules, false));
  }
  for (const alphabet of [BASE64_STANDARD, BASE64_URL]) {
    into.add(base64Padded(bytes, alphabet)); // a standalone blob: masks its edge character and padding too
    into.add(base64(bytes, alphabet));
    for (const shift of [0, 1, 2] as const) into.add(base64Core(bytes, shift, alphabet));
  }
  doubleBase64Cores(bytes, into);
}

/**
 * The strings to mask for one value: the value and each of its lines (and each line trimmed) that is at
 * least `minLength` UTF-8 bytes long, each in every encoded form. A line below the minimum is not masked
 * on its own, since masking short fragments would blank out ordinary text; it is still masked as part of
 * the whole value.
 */
export function encodedForms(value: string, minLength: number = MIN_SECRET_BYTES): string[] {
  const parts = new Set<string>([value]);
  const lines = value.split(/\r\n|\r|\n/);
  if (lines.length > 1) for (const line of lines) for (const part of [line, line.trim()]) if (utf8Length(part) >= minLength) parts.add(part);
  const forms = new Set<string>();
  for (const part of parts) formsOf(part, forms);
  forms.delete('');
  return [...forms];
}
