import type { Config } from '../domain/config.js';
import type { ArtifactStore } from './artifact-store.js';
import { DataDirArtifactStore } from './data-dir-artifact-store.js';
import { S3ArtifactStore } from './s3-artifact-store.js';

export type ArtifactStoreConfig = Pick<
  Config,
  | 'HODEI_ARTIFACT_STORE'
  | 'HODEI_DATA_DIR'
  | 'HODEI_S3_ENDPOINT'
  | 'HODEI_S3_REGION'
  | 'HODEI_S3_ACCESS_KEY_ID'
  | 'HODEI_S3_SECRET_ACCESS_KEY'
  | 'HODEI_S3_FORCE_PATH_STYLE'
>;

/** Opens the artifact store `HODEI_ARTIFACT_STORE` names: the data dir, or an S3 bucket. */
export function openArtifactStore(config: ArtifactStoreConfig): ArtifactStore {
  if (config.HODEI_ARTIFACT_STORE === 'datadir') return DataDirArtifactStore.inDataDir(config.HODEI_DATA_DIR);
  const url = new URL(config.HODEI_ARTIFACT_STORE);
  return new S3ArtifactStore({
    bucket: url.hostname,
    prefix: decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''),
    client: {
      region: config.HODEI_S3_REGION,
      forcePathStyle: config.HODEI_S3_FORCE_PATH_STYLE,
      ...(config.HODEI_S3_ENDPOINT && { endpoint: config.HODEI_S3_ENDPOINT }),
      ...(config.HODEI_S3_ACCESS_KEY_ID &&
        config.HODEI_S3_SECRET_ACCESS_KEY && {
          credentials: {
            accessKeyId: config.HODEI_S3_ACCESS_KEY_ID,
            secretAccessKey: config.HODEI_S3_SECRET_ACCESS_KEY,
          },
        }),
    },
  });
}
