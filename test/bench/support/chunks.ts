/** The text cut into chunks of `chunkBytes` of UTF-8, as a pipe would deliver them, decoded to strings. */
export function chunksOf(text: string, chunkBytes: number): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const decoder = new TextDecoder('utf-8');
  const chunks: string[] = [];
  for (let i = 0; i < bytes.length; i += chunkBytes) chunks.push(decoder.decode(bytes.subarray(i, i + chunkBytes), { stream: true }));
  chunks.push(decoder.decode());
  return chunks;
}
