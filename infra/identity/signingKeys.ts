import { importJWK, type JWK, type KeyLike } from 'jose';
import type { CommandContext } from '../../domain/commandHandler';
import { DomainError } from '../../domain/errors';
import type { Clock } from '../../domain/ports/clock';
import type { Ids } from '../../domain/ports/ids';
import { SIGNING_ERROR, type SigningKeyRepository, type SigningKeyRing } from '../../domain/ports/signingKeys';
import type { PlatformCommand } from '../../domain/platform';
import { signingKeysStreamId } from '../../domain/streams';
import { onPlatform, readPlatform } from '../../domain/services/platformStream';
import {
  checkpointVerificationKeys, currentKey, decideRotation, defaultSigningKeyPolicy, tokenVerificationKeys,
  type PublicJwk, type PublicSigningJwk, type SigningKeyInfo, type SigningKeyPolicy,
} from '../../domain/signingKeys';
import { type AlgorithmOption, type SigningKeyAlgorithm, algorithmOf } from './keyAlgorithms';

export interface RotationOutcome {
  readonly rotated: boolean;
  /** The key that is current after the call. */
  readonly kid: string;
  readonly generation: number;
  readonly previousKid?: string;
  /** Why nothing was rotated. */
  readonly reason?: string;
  /** False when the `SigningKeyRotated` events could not be appended now; the next `rotate` catches up. */
  readonly recorded: boolean;
}

/** Appends the rotations the platform log does not have yet; called after every rotation and skip. */
export type RotationRecorder = (keys: readonly SigningKeyInfo<PublicJwk>[]) => Promise<void>;

/** `algorithm`: Ed25519 when left out (the checkpoint ring); the workload identity ring passes `rs256Keys`. */
export type SigningKeysOptions<J extends PublicJwk = PublicSigningJwk> = {
  readonly repository: SigningKeyRepository<J>;
  readonly clock: Clock;
  readonly policy?: SigningKeyPolicy;
  readonly recorder?: RotationRecorder;
} & AlgorithmOption<J>;

interface Loaded<J extends PublicJwk> {
  readonly loadedAt: number;
  readonly keys: readonly SigningKeyInfo<J>[];
  readonly signer?: { readonly kid: string; readonly key: KeyLike };
}

/**
 * The platform's key ring in memory (DESIGN.md §1 promise 9): the current private key for signing, public keys
 * for verifying, reloaded after `policy.cacheTtlMs` so a rotation on another instance is picked up, and
 * `rotate`, which makes a new key current through the repository's version guard. Private keys live only in
 * this object's memory and the sealed repository row; nothing here logs or returns them.
 */
export class SigningKeys<J extends PublicJwk = PublicSigningJwk> {
  readonly policy: SigningKeyPolicy;
  readonly algorithm: SigningKeyAlgorithm<J>;
  private readonly repository: SigningKeyRepository<J>;
  private readonly clock: Clock;
  private readonly recorder: RotationRecorder | undefined;
  private loaded: Loaded<J> | undefined;
  private loading: { readonly epoch: number; readonly promise: Promise<Loaded<J>> } | undefined;
  /** Bumped by every rotation this instance commits: a read begun before it can never be served after it. */
  private epoch = 0;
  private bootstrapping: Promise<RotationOutcome> | undefined;
  private readonly publicKeys = new Map<string, Promise<KeyLike>>();

  constructor(options: SigningKeysOptions<J>) {
    this.algorithm = algorithmOf<J>(options);
    this.repository = options.repository;
    this.clock = options.clock;
    this.policy = options.policy ?? defaultSigningKeyPolicy;
    this.recorder = options.recorder;
  }

  /** The current key; the first call on an empty ring creates (and records) the first key. */
  async signingKey(): Promise<{ readonly kid: string; readonly key: KeyLike }> {
    let loaded = await this.load();
    if (!loaded.signer) {
      this.bootstrapping ??= this.rotate({ record: false }).finally(() => (this.bootstrapping = undefined));
      await this.bootstrapping;
      loaded = await this.load(true);
      // Recorded outside the bootstrap: the append signs its checkpoint with this very key, and must not wait
      // for a bootstrap that waits for it (the deadlock a first start would otherwise risk).
      await this.record(loaded.keys);
    }
    if (!loaded.signer) throw new DomainError(SIGNING_ERROR.KEYS_UNAVAILABLE, 'No current signing key could be loaded', 'unavailable');
    return loaded.signer;
  }

  /** A public key that verifies checkpoints: any key the platform ever used. */
  checkpointKey(kid: string): Promise<KeyLike | undefined> {
    return this.verificationKey(kid, (keys) => checkpointVerificationKeys(keys));
  }

  /** A public key that verifies sandbox tokens at `now`: the current key, or a retired one inside its window. */
  tokenKey(kid: string, now: Date): Promise<KeyLike | undefined> {
    return this.verificationKey(kid, (keys) => tokenVerificationKeys(keys, now, this.policy));
  }

  /** Creates (and records) the first key when the ring is empty; startup calls it so the JWKS is never empty. */
  async ensureCurrentKey(): Promise<string> {
    return (await this.signingKey()).kid;
  }

  /** What `/.well-known/jwks.json` publishes: public halves only, rebuilt field by field; never an empty set. */
  async jwks(now: Date = this.clock.now()): Promise<{ keys: J[] }> {
    let { keys } = await this.load();
    if (!currentKey(keys)) {
      await this.ensureCurrentKey();
      ({ keys } = await this.load(true));
    }
    return {
      keys: tokenVerificationKeys(keys, now, this.policy).map(({ publicJwk }) => this.algorithm.publish(publicJwk, publicJwk.kid)),
    };
  }

  /** Every key ever used (public metadata), newest first. */
  async ring(): Promise<readonly SigningKeyInfo<J>[]> {
    return checkpointVerificationKeys((await this.load(true)).keys);
  }

  /**
   * Makes a new key current unless the current one is younger than `policy.minKeyAgeMs` (`force` skips that
   * check, for a suspected compromise). Safe to call from several instances at once: one rotation wins the
   * version guard, the others re-read and find a fresh key.
   */
  async rotate(options: { readonly force?: boolean; readonly record?: boolean } = {}): Promise<RotationOutcome> {
    let force = options.force === true;
    const record = (keys: readonly SigningKeyInfo<J>[]): Promise<boolean> => (options.record === false ? Promise.resolve(true) : this.record(keys));
    for (let attempt = 0; attempt < 5; attempt++) {
      const ring = await this.repository.load();
      const now = this.clock.now();
      const decision = decideRotation(ring.keys, now, this.policy, { force });
      if (decision.kind === 'skip') {
        const recorded = await record(ring.keys);
        return { rotated: false, kid: decision.current.kid, generation: decision.current.generation, reason: decision.reason, recorded };
      }
      const fresh = await this.newKey(decision.generation, now);
      const committed = await this.repository.rotate(
        ring,
        { info: fresh.info, privateJwk: fresh.privateJwk },
        decision.retire ? { kid: decision.retire.kid, at: now.toISOString() } : undefined,
      );
      if (committed) {
        this.loaded = undefined;
        this.epoch++;
        const recorded = await record([...ring.keys, fresh.info]);
        return {
          rotated: true,
          kid: fresh.info.kid,
          generation: fresh.info.generation,
          ...(decision.retire ? { previousKid: decision.retire.kid } : {}),
          recorded,
        };
      }
      // Another instance rotated first; one rotation is what was asked for, forced or not.
      force = false;
    }
    throw new DomainError(SIGNING_ERROR.KEYS_UNAVAILABLE, 'The signing keys kept changing during rotation', 'conflict');
  }

  private async newKey(generation: number, now: Date): Promise<{ info: SigningKeyInfo<J>; privateJwk: string }> {
    const { publicJwk, privateJwk } = await this.algorithm.generate();
    return { info: { kid: publicJwk.kid, generation, createdAt: now.toISOString(), publicJwk }, privateJwk };
  }

  private async record(keys: readonly SigningKeyInfo<J>[]): Promise<boolean> {
    if (!this.recorder) return true;
    try {
      await this.recorder(keys);
      return true;
    } catch {
      return false;
    }
  }

  private async verificationKey(kid: string, usable: (keys: readonly SigningKeyInfo<J>[]) => SigningKeyInfo<J>[]): Promise<KeyLike | undefined> {
    let loaded = await this.load();
    // A kid this instance has not seen may be a rotation on another instance: look once more before refusing.
    if (!loaded.keys.some((k) => k.kid === kid)) loaded = await this.load(true);
    const key = usable(loaded.keys).find((k) => k.kid === kid);
    if (!key) return undefined;
    let imported = this.publicKeys.get(kid);
    if (!imported) {
      imported = importJWK({ ...key.publicJwk }, this.algorithm.alg) as Promise<KeyLike>;
      this.publicKeys.set(kid, imported);
    }
    return imported;
  }

  private async load(fresh = false): Promise<Loaded<J>> {
    const now = this.clock.now().getTime();
    if (!fresh && this.loaded && now - this.loaded.loadedAt < this.policy.cacheTtlMs) return this.loaded;
    if (this.loading?.epoch !== this.epoch) {
      const loading = { epoch: this.epoch, promise: this.read(now, this.epoch) };
      this.loading = loading;
      void loading.promise.finally(() => {
        if (this.loading === loading) this.loading = undefined;
      }).catch(() => undefined);
    }
    return this.loading.promise;
  }

  private async read(loadedAt: number, epoch: number): Promise<Loaded<J>> {
    const ring: SigningKeyRing<J> = await this.repository.load();
    const current = currentKey(ring.keys);
    let signer: Loaded<J>['signer'];
    if (current) {
      const jwk = await this.repository.privateJwk(current.kid);
      if (jwk === undefined)
        throw new DomainError(SIGNING_ERROR.KEYS_UNAVAILABLE, `The current signing key ${current.kid} has no private half`, 'unavailable');
      signer = { kid: current.kid, key: (await importJWK(JSON.parse(jwk) as JWK, this.algorithm.alg)) as KeyLike };
    }
    const loaded: Loaded<J> = { loadedAt, keys: ring.keys, ...(signer ? { signer } : {}) };
    // A read begun before a rotation this instance committed answers its own callers but is not cached.
    if (epoch === this.epoch) this.loaded = loaded;
    return loaded;
  }
}

/**
 * The recorder that writes `SigningKeyRotated` into the platform's own log: stream version n is generation n,
 * so each rotation is recorded exactly once even when instances race. The log is reached through a getter: its
 * event store signs with the very keys that record into it, so it is built after them.
 */
export function platformLogRecorder(platformLog: () => CommandContext | Promise<CommandContext>, ids: Ids, streamId: string = signingKeysStreamId()): RotationRecorder {
  return async (keys) => {
    const deps = await platformLog();
    const { recordedGeneration } = await readPlatform(deps.store, streamId);
    const byGeneration = [...keys].sort((a, b) => a.generation - b.generation);
    for (const key of byGeneration) {
      if (key.generation <= recordedGeneration) continue;
      const previous = byGeneration.find((k) => k.generation === key.generation - 1);
      const command: PlatformCommand = {
        type: 'RecordSigningKeyRotation',
        kid: key.kid,
        generation: key.generation,
        ...(previous ? { previousKid: previous.kid } : {}),
        activatedAt: key.createdAt,
      };
      const { state } = await onPlatform(deps, command, { actor: 'system:rotateSigningKeys', correlationId: ids.next() }, streamId);
      // The one before it is still missing: the next recording catches up in order.
      if (state.recordedGeneration < key.generation) return;
    }
  };
}
