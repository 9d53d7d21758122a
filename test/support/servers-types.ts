/** What the global setup hands to the tests (via vitest's provide/inject). */
export type ServersInfo =
  | { available: false; reason: string }
  | {
      available: true;
      /** The test venv directory. */
      venv: string;
      /** Its python executable. */
      python: string;
      /** The python of the azureml-mlflow plugin's venv (test/azureml-requirements.txt). */
      azureMlPython: string;
      /** `mlflow server --serve-artifacts` with a local artifacts destination (proxied, no multipart). */
      plain: { url: string; artifactsDir: string };
      /** `mlflow server --serve-artifacts` with an S3 (moto) artifacts destination: multipart capable. */
      s3: { url: string; s3Endpoint: string; bucket: string };
      /** `mlflow server --no-serve-artifacts` whose runs have `s3://` artifact URIs on moto. */
      direct: { url: string; s3Endpoint: string; bucket: string; artifactRoot: string };
      /**
       * `mlflow server --no-serve-artifacts` whose runs have `gs://` artifact URIs on
       * gcp-storage-emulator; set `STORAGE_EMULATOR_HOST=emulatorHost` for Python clients.
       */
      gcs: { url: string; emulatorHost: string; bucket: string; artifactRoot: string };
      /** AWS credentials moto accepts. */
      awsEnv: Record<string, string>;
      /**
       * Azurite's Blob service and `mlflow server --no-serve-artifacts` whose runs have `wasbs://`
       * artifact URIs on it (the account in the URI is Azurite's; the connection string routes it).
       */
      azure: {
        url: string;
        /** `http://127.0.0.1:<port>/devstoreaccount1`. */
        blobEndpoint: string;
        account: string;
        accountKey: string;
        container: string;
        /** `wasbs://<container>@devstoreaccount1.blob.core.windows.net/direct`. */
        artifactRoot: string;
        /** `AZURE_STORAGE_CONNECTION_STRING` pointing at Azurite, for the server and Python clients. */
        env: Record<string, string>;
      };
    };

declare module 'vitest' {
  export interface ProvidedContext {
    servers: ServersInfo;
  }
}
