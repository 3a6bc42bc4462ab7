import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import { readOrCreateDataFile } from './data-dir-file.js';

const PayloadMessage = proto.temporal.api.common.v1.Payload;

/** `encoding` metadata of a payload this codec encrypted. */
export const ENCODING_ENCRYPTED = 'binary/encrypted';
/** Metadata naming the key a payload was encrypted with, so keys can rotate. */
export const METADATA_KEY_ID = 'encryption-key-id';
/** File in the data dir holding the key made when `HODEI_CODEC_KEY` is not set. */
export const CODEC_KEY_FILE = 'codec-key';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A payload that cannot be decrypted: tampered with, cut short, or not made with this key. */
export class PayloadDecryptError extends Error {
  override name = 'PayloadDecryptError';
}

/** A payload encrypted with a key this installation does not hold (any more). */
export class UnknownCodecKeyError extends Error {
  override name = 'UnknownCodecKeyError';
}

/** A key setting that is not base64 of 32 bytes. */
export function parseCodecKey(text: string): Buffer {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, 'base64');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== KEY_BYTES) {
    throw new Error(`a codec key is base64 of ${KEY_BYTES} random bytes (e.g. \`openssl rand -base64 32\`)`);
  }
  return key;
}

/** A key's id: derived from the key, so it can never be paired with the wrong one. Not secret. */
export function codecKeyId(key: Buffer): string {
  return createHash('sha256').update('hodei-codec-key-id:').update(key).digest('hex').slice(0, 16);
}

/**
 * AES-256-GCM payload codec. Each payload is serialized (protobuf) whole — data and metadata,
 * so not even its encoding shows — and sealed with a fresh random IV. The result's data is
 * `iv ‖ ciphertext ‖ tag`; its metadata `encoding: binary/encrypted` and the key's id. The first
 * key encrypts; every key decrypts, so a key can rotate while histories made with the old one
 * are kept. Payloads that are not encrypted (written before the codec existed) decode as they are.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  private readonly current: { id: string; key: Buffer };
  private readonly byId: Map<string, Buffer>;

  /** `keys`: 32-byte keys, the first one encrypting. */
  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('the payload codec needs at least one key');
    for (const key of keys) if (key.length !== KEY_BYTES) throw new Error(`a codec key is ${KEY_BYTES} bytes`);
    this.byId = new Map(keys.map((key) => [codecKeyId(key), key]));
    this.current = { id: codecKeyId(keys[0]!), key: keys[0]! };
  }

  /** Id of the key new payloads are encrypted with. */
  get keyId(): string {
    return this.current.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.encrypt(payload));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => this.decrypt(payload));
  }

  private encrypt(payload: Payload): Payload {
    const plain = PayloadMessage.encode(payload).finish();
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from(ENCODING_ENCRYPTED),
        [METADATA_KEY_ID]: Buffer.from(this.current.id),
      },
      data: sealed,
    };
  }

  private decrypt(payload: Payload): Payload {
    const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
    if (!encoding || Buffer.from(encoding).toString() !== ENCODING_ENCRYPTED) return payload;
    const idBytes = payload.metadata?.[METADATA_KEY_ID];
    const id = idBytes ? Buffer.from(idBytes).toString() : '';
    const key = this.byId.get(id);
    if (!key) throw new UnknownCodecKeyError(`payload encrypted with unknown key ${JSON.stringify(id)}`);
    const data = Buffer.from(payload.data ?? []);
    if (data.length < IV_BYTES + TAG_BYTES) throw new PayloadDecryptError('encrypted payload too short');
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new PayloadDecryptError('encrypted payload failed authentication (tampered with, or another key)');
    }
    return PayloadMessage.decode(plain);
  }
}

/**
 * The installation's codec keys, the encrypting one first: `HODEI_CODEC_KEY`, or else the key in
 * `<data dir>/codec-key`, created (mode 0600) on first start; then `HODEI_CODEC_PREVIOUS_KEYS`.
 */
export function codecKeys(config: {
  HODEI_CODEC_KEY?: string;
  HODEI_CODEC_PREVIOUS_KEYS: string[];
  HODEI_DATA_DIR: string;
}): Buffer[] {
  const current = config.HODEI_CODEC_KEY ?? ensureCodecKeyFile(config.HODEI_DATA_DIR);
  return [current, ...config.HODEI_CODEC_PREVIOUS_KEYS].map(parseCodecKey);
}

/** Reads the data dir's codec key, creating a random one when there is none. */
export function ensureCodecKeyFile(dataDir: string): string {
  return readOrCreateDataFile(dataDir, CODEC_KEY_FILE, () => randomBytes(KEY_BYTES).toString('base64'));
}

/** The data converter of every Temporal client and worker of the installation. */
export function encryptingDataConverter(keys: readonly Buffer[]): DataConverter {
  return { payloadCodecs: [new AesGcmPayloadCodec(keys)] };
}
