/**
 * UTF-8 and base64 written by hand: the domain compiles without Buffer, TextEncoder or btoa, and the
 * redactor needs the exact bytes a Node or browser encoder would produce, lone surrogates included.
 */

const REPLACEMENT = 0xfffd;

/** The UTF-8 bytes of `text`; a lone surrogate becomes U+FFFD, as `Buffer.from` and `TextEncoder` do. */
export function utf8Bytes(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let cp = text.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (cp <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        cp = REPLACEMENT;
      }
    }
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 63));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 63), 0x80 | ((cp >> 6) & 63), 0x80 | (cp & 63));
  }
  return out;
}

/** How many UTF-8 bytes `text` takes (a lone surrogate counts as U+FFFD): the one byte counter of the domain. */
export function utf8Length(text: string): number {
  let length = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) length += 1;
    else if (c < 0x800) length += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && text.charCodeAt(i + 1) >= 0xdc00 && text.charCodeAt(i + 1) <= 0xdfff) {
      length += 4;
      i++;
    } else length += 3;
  }
  return length;
}

/** Code points of `text`; a lone surrogate stays itself (numeric entities of it are what a serializer writes). */
export function codePoints(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const cp = text.codePointAt(i) ?? 0;
    out.push(cp);
    if (cp > 0xffff) i++;
  }
  return out;
}

export const BASE64_STANDARD = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
export const BASE64_URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Base64 without padding: ceil(8n/6) characters, the last one possibly carrying zero fill bits. */
export function base64(bytes: readonly number[], alphabet: string): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]! + alphabet[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = (bytes[i] ?? 0) << 16;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! + alphabet[(n >> 6) & 63]!;
  }
  return out;
}

export function base64Padded(bytes: readonly number[], alphabet: string): string {
  const text = base64(bytes, alphabet);
  return text + '='.repeat((4 - (text.length % 4)) % 4);
}

/**
 * The characters of base64 that depend only on `bytes` when they sit `shift` bytes (0, 1 or 2) past a
 * 3-byte group boundary inside a larger blob. Character k covers bits [6k, 6k+6) of the blob; the value
 * occupies bits [8·shift, 8·(shift+n)), so the stable characters run from ceil(8·shift/6) to
 * floor(8·(shift+n)/6). The edge characters mixed with neighbouring bytes, and the padding, are dropped.
 */
export function base64Core(bytes: readonly number[], shift: 0 | 1 | 2, alphabet: string): string {
  const shifted = [...new Array<number>(shift).fill(0), ...bytes];
  const text = base64(shifted, alphabet);
  return text.slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + bytes.length)) / 6));
}

/** Each byte as two hex digits: what `Buffer.toString('hex')`, `xxd -p` and most hex dumps write. */
export function hexOf(bytes: readonly number[], upper: boolean): string {
  let out = '';
  for (const b of bytes) out += hex2(b, upper);
  return out;
}

/** The ASCII bytes of a text that is ASCII (base64 output): what the next encoder of a chain reads. */
export function asciiBytes(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) out.push(text.charCodeAt(i) & 0x7f);
  return out;
}

export function hex2(byte: number, upper: boolean): string {
  const h = byte.toString(16).padStart(2, '0');
  return upper ? h.toUpperCase() : h;
}

export function hex4(unit: number, upper: boolean): string {
  const h = unit.toString(16).padStart(4, '0');
  return upper ? h.toUpperCase() : h;
}
