import { encryptingDataConverter, parseCodecKey } from '../../domain/payload-codec.js';

/**
 * The payload codec key the recorded histories (test/fixtures/histories/) are encrypted with,
 * since payloads have been encrypted. A test key, public by being here: never an installation's.
 */
export const FIXTURE_CODEC_KEY = 'qBdCcrrvz5CVNZXhKNiLAL3dtA38iSWhRaE3wngMG2s=';

/** What the replayer needs to read the recorded histories (older, unencrypted ones pass through). */
export const fixtureDataConverter = () => encryptingDataConverter([parseCodecKey(FIXTURE_CODEC_KEY)]);
