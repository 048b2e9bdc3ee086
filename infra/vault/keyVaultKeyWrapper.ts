import type { TokenCredential } from '@azure/core-auth';
import { DefaultAzureCredential } from '@azure/identity';
import { CryptographyClient, type CryptographyClientOptions } from '@azure/keyvault-keys';
import { DomainError } from '../../domain/errors';
import type { KeyWrapper, WrappedKey } from './keyWrapper';

const ALGORITHM = 'RSA-OAEP-256';

/**
 * Production master key: an RSA key in Key Vault, used only through wrapKey/unwrapKey, so the private half
 * never leaves Key Vault. `keyId` is the key's full identifier (with or without a version); the identifier
 * Key Vault reports back (with its version) is stored with each wrapped key, so unwrap after a key rotation
 * uses the version that wrapped it.
 */
export class KeyVaultKeyWrapper implements KeyWrapper {
  private readonly clients = new Map<string, CryptographyClient>();

  constructor(
    readonly keyId: string,
    private readonly credential: TokenCredential = new DefaultAzureCredential(),
    private readonly clientOptions: CryptographyClientOptions = {},
  ) {}

  async wrap(dataKey: Uint8Array): Promise<WrappedKey> {
    const result = await this.call(() => this.client(this.keyId).wrapKey(ALGORITHM, dataKey));
    return { keyId: result.keyID ?? this.keyId, algorithm: ALGORITHM, wrapped: Buffer.from(result.result).toString('base64') };
  }

  async unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
    if (wrapped.algorithm !== ALGORITHM)
      throw new DomainError('VAULT.MASTER_KEY_MISMATCH', `A data key was wrapped with ${wrapped.algorithm}, not ${ALGORITHM}`, 'unavailable');
    const result = await this.call(() =>
      this.client(wrapped.keyId).unwrapKey(ALGORITHM, Buffer.from(wrapped.wrapped, 'base64')),
    );
    return result.result;
  }

  private client(keyId: string): CryptographyClient {
    let client = this.clients.get(keyId);
    if (!client) {
      client = new CryptographyClient(keyId, this.credential, this.clientOptions);
      this.clients.set(keyId, client);
    }
    return client;
  }

  /** SDK errors carry request bodies (here: key material); only the status and code survive. */
  private async call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      const { statusCode, code } = error as { statusCode?: number; code?: string };
      throw new DomainError(
        'VAULT.UNAVAILABLE',
        `Key Vault refused a key operation (status ${statusCode ?? 'none'}, code ${code ?? 'none'})`,
        'unavailable',
      );
    }
  }
}
