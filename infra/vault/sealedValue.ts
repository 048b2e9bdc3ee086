import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { integrityError } from '../../domain/ports/secretVault';

/** Format tag stored with each ciphertext so a later scheme can be introduced next to this one. */
export const SEAL_ALGORITHM = 'A256GCM-v1';

/** Where a value belongs. All of it is bound into the ciphertext as AAD, so a moved ciphertext fails to open. */
export interface SealContext {
  readonly workspaceId: string;
  readonly name: string;
  readonly version: number;
}

function aad(context: SealContext): Buffer {
  // NUL separators cannot occur in workspace ids or names, so no two contexts share an encoding.
  return Buffer.from(`disco-parrot/vault/secret/v1\0${context.workspaceId}\0${context.name}\0${context.version}`, 'utf8');
}

/** AES-256-GCM with a fresh 12-byte IV per write: base64(iv ‖ ciphertext ‖ 16-byte tag). */
export function sealValue(dataKey: Uint8Array, value: string, context: SealContext): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', dataKey, iv).setAAD(aad(context));
  return Buffer.concat([iv, cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]).toString('base64');
}

/** Opens a sealed value or throws `VAULT.INTEGRITY`; the error names the secret, never any bytes. */
export function openValue(dataKey: Uint8Array, sealed: string, context: SealContext): string {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length < 12 + 16) throw integrityError(context.name);
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, bytes.subarray(0, 12)).setAAD(aad(context));
    decipher.setAuthTag(bytes.subarray(bytes.length - 16));
    return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    throw integrityError(context.name);
  }
}
