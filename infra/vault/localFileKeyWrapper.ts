import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DomainError } from '../../domain/errors';
import type { KeyWrapper, WrappedKey } from './keyWrapper';

const ALGORITHM = 'A256GCM';
const AAD = Buffer.from('disco-parrot/vault/data-key/v1');

/**
 * Local development master key: 32 random bytes in a key file (mode 0600) created on first use, by default
 * under `.azurite/`. Data keys are wrapped with AES-256-GCM under it. The key id is a fingerprint of the
 * key, so a wrapped key made under another master key is recognised before decryption is attempted.
 */
export class LocalFileKeyWrapper implements KeyWrapper {
  readonly keyId: string;
  private readonly masterKey: Buffer;

  private constructor(masterKey: Buffer) {
    this.masterKey = masterKey;
    this.keyId = `local:${createHash('sha256').update(masterKey).digest('hex').slice(0, 16)}`;
  }

  /** Loads the key file, creating it (and its directory) with a fresh key when it does not exist. */
  static open(keyFile: string = path.join('.azurite', 'vault-master.key')): LocalFileKeyWrapper {
    mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(keyFile, randomBytes(32).toString('base64'), { flag: 'wx', mode: 0o600 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    // A file created by an older version or copied in with looser bits is tightened, not trusted as is.
    chmodSync(keyFile, 0o600);
    const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64');
    if (key.length !== 32)
      throw new DomainError('VAULT.MASTER_KEY_INVALID', `The vault master key file ${keyFile} does not hold 32 bytes`, 'unavailable');
    return new LocalFileKeyWrapper(key);
  }

  async wrap(dataKey: Uint8Array): Promise<WrappedKey> {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.masterKey, iv).setAAD(AAD);
    const sealed = Buffer.concat([iv, cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
    return { keyId: this.keyId, algorithm: ALGORITHM, wrapped: sealed.toString('base64') };
  }

  async unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
    if (wrapped.keyId !== this.keyId || wrapped.algorithm !== ALGORITHM)
      throw new DomainError('VAULT.MASTER_KEY_MISMATCH', `A data key was wrapped by ${wrapped.keyId}, not ${this.keyId}`, 'unavailable');
    const sealed = Buffer.from(wrapped.wrapped, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.masterKey, sealed.subarray(0, 12)).setAAD(AAD);
      decipher.setAuthTag(sealed.subarray(sealed.length - 16));
      return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
    } catch {
      throw new DomainError('VAULT.INTEGRITY', 'A wrapped data key failed its integrity check', 'unavailable');
    }
  }
}
