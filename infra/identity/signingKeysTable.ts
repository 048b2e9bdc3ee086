import { randomBytes } from 'node:crypto';
import { odata, type TableClient, type TableEntityResult, type TransactionAction } from '@azure/data-tables';
import type { PublicJwk, PublicSigningJwk, SigningKeyInfo } from '../../domain/signingKeys';
import type { NewSigningKey, SigningKeyRepository, SigningKeyRing } from '../../domain/ports/signingKeys';
import type { KeyWrapper } from '../vault/keyWrapper';
import { SEAL_ALGORITHM, openValue, sealValue } from '../vault/sealedValue';
import { guarded, sanitized, statusOf } from '../vault/vaultErrors';
import { type SigningKeyAlgorithm, algorithmOf } from './keyAlgorithms';

const RING_ROW = 'ring';
const keyRow = (generation: number): string => `key:${String(generation).padStart(10, '0')}`;

/** Where a ring rests in the key table: its partition, and what its sealed private keys are bound to. */
export interface SigningKeyRingPlace {
  readonly partition: string;
  /** Bound into each sealed private key as AAD (with kid and generation), so a key moved to another ring or row does not open. */
  readonly sealScope: string;
}

/** The Ed25519 ring's place (the first ring; its rows predate the others). */
export const CHECKPOINT_RING: SigningKeyRingPlace = { partition: 'platform', sealScope: 'platform/signing-keys' };
/** The RS256 workload identity ring (docs/identity.md). */
export const WORKLOAD_IDENTITY_RING: SigningKeyRingPlace = { partition: 'platform-workload-identity', sealScope: 'platform/workload-identity-keys' };

interface RingRow {
  generation: number;
  currentKid: string;
}

/** One row per key, kept for good. `sealed` and the wrapped data key exist only while the key is current. */
interface KeyRow {
  kid: string;
  generation: number;
  createdAt: string;
  retiredAt?: string;
  publicJwk: string;
  sealed?: string;
  sealAlgorithm?: string;
  wrappedKey?: string;
  wrapKeyId?: string;
  wrapAlgorithm?: string;
}

function toInfo<J extends PublicJwk>(row: KeyRow, algorithm: SigningKeyAlgorithm<J>): SigningKeyInfo<J> {
  // Rebuilt field by field: whatever else a row holds never reaches a caller or the JWKS.
  const publicJwk = algorithm.publish(JSON.parse(row.publicJwk) as Partial<J>, row.kid);
  return {
    kid: row.kid,
    generation: row.generation,
    createdAt: row.createdAt,
    ...(row.retiredAt ? { retiredAt: row.retiredAt } : {}),
    publicJwk,
  };
}

/**
 * Platform signing keys on Table storage, the same way the encrypted vault keeps secrets: each private JWK is
 * AES-256-GCM sealed under its own random data key, which is wrapped by the vault's master key (a Key Vault key
 * used through wrap/unwrap in Azure, a local key file in development). One partition, a `ring` row whose ETag
 * guards rotations, and one `key:` row per generation.
 *
 * Why not the SecretVault port: the vault keeps superseded and deleted values for the redactor's rotation
 * window, but a retired private signing key must be gone at once; and a rotation must add the new key, strip
 * the old one and move the pointer in one atomic write, which the vault cannot express.
 */
export class TableSigningKeyRepository<J extends PublicJwk = PublicSigningJwk> implements SigningKeyRepository<J> {
  private ready: Promise<void> | undefined;
  private readonly algorithm: SigningKeyAlgorithm<J>;
  private readonly place: SigningKeyRingPlace;

  constructor(
    private readonly table: TableClient,
    private readonly keyWrapper: KeyWrapper,
    ring: { readonly algorithm?: SigningKeyAlgorithm<J>; readonly place?: SigningKeyRingPlace } = {},
  ) {
    this.algorithm = algorithmOf<J>(ring);
    this.place = ring.place ?? CHECKPOINT_RING;
  }

  private sealContext(kid: string, generation: number) {
    return { workspaceId: this.place.sealScope, name: kid, version: generation };
  }

  async load(): Promise<SigningKeyRing<J>> {
    await this.ensureTable();
    return guarded('load the signing keys', async () => {
      const keys: SigningKeyInfo<J>[] = [];
      const partition = this.place.partition;
      let version: string | undefined;
      for await (const row of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${partition}` } })) {
        if (row.rowKey === RING_ROW) version = row.etag;
        else if (row.rowKey?.startsWith('key:')) keys.push(toInfo(row as unknown as KeyRow, this.algorithm));
      }
      return version === undefined ? { keys } : { keys, version };
    });
  }

  async privateJwk(kid: string): Promise<string | undefined> {
    await this.ensureTable();
    const rows = await guarded('read a signing key', async () => {
      const out: TableEntityResult<KeyRow>[] = [];
      for await (const row of this.table.listEntities<KeyRow>({ queryOptions: { filter: odata`PartitionKey eq ${this.place.partition} and kid eq ${kid}` } }))
        out.push(row);
      return out;
    });
    const row = rows[0];
    if (!row?.sealed || !row.wrappedKey || !row.wrapKeyId || !row.wrapAlgorithm) return undefined;
    const dataKey = await this.keyWrapper.unwrap({ keyId: row.wrapKeyId, algorithm: row.wrapAlgorithm, wrapped: row.wrappedKey });
    return openValue(dataKey, row.sealed, this.sealContext(row.kid, row.generation));
  }

  async rotate(expected: SigningKeyRing<J>, key: NewSigningKey<J>, retire?: { kid: string; at: string }): Promise<boolean> {
    await this.ensureTable();
    const partition = this.place.partition;
    const { info } = key;
    const dataKey = randomBytes(32);
    const wrapped = await this.keyWrapper.wrap(dataKey);
    const row: KeyRow = {
      kid: info.kid,
      generation: info.generation,
      createdAt: info.createdAt,
      publicJwk: JSON.stringify(info.publicJwk),
      sealed: sealValue(dataKey, key.privateJwk, this.sealContext(info.kid, info.generation)),
      sealAlgorithm: SEAL_ALGORITHM,
      wrappedKey: wrapped.wrapped,
      wrapKeyId: wrapped.keyId,
      wrapAlgorithm: wrapped.algorithm,
    };
    dataKey.fill(0);
    const ring: RingRow = { generation: info.generation, currentKid: info.kid };
    const actions: TransactionAction[] = [
      expected.version === undefined
        ? ['create', { partitionKey: partition, rowKey: RING_ROW, ...ring }]
        : ['update', { partitionKey: partition, rowKey: RING_ROW, ...ring }, 'Replace', { etag: expected.version }],
      ['create', { partitionKey: partition, rowKey: keyRow(info.generation), ...row }],
    ];
    if (retire) {
      const old = expected.keys.find((k) => k.kid === retire.kid);
      if (!old) throw new RangeError(`Key ${retire.kid} is not in the ring it is retired from`);
      // Replace, not Merge: the sealed private half and its wrapped data key are dropped from the row.
      const stripped: KeyRow = { kid: old.kid, generation: old.generation, createdAt: old.createdAt, retiredAt: retire.at, publicJwk: JSON.stringify(old.publicJwk) };
      actions.push(['update', { partitionKey: partition, rowKey: keyRow(old.generation), ...stripped }, 'Replace']);
    }
    try {
      await this.table.submitTransaction(actions);
      return true;
    } catch (error) {
      const status = statusOf(error);
      // 412: the ring moved; 409: the ring or this generation's row was created by another writer.
      if (status === 409 || status === 412) return false;
      throw sanitized(error, 'rotate the signing keys');
    }
  }

  private ensureTable(): Promise<void> {
    this.ready ??= this.table.createTable().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }
}
