/**
 * URI parsing and configuration of the Azure stores, without a server: the URI shapes MLflow
 * accepts, the credential order MLflow uses, MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT, and bad
 * values refused before any request.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, InvalidArgumentError } from '../../src/core/errors.js';
import { redact } from '../../src/core/logger.js';
import { AzureBlobArtifactStore } from '../../src/stores/azure-blob-store.js';
import { effectiveBlockSize, parseAzureUri, resolveAzureConfig } from '../../src/stores/azure-config.js';

const MiB = 1024 * 1024;

describe('parseAzureUri', () => {
  it('reads wasbs:// URIs with the suffixes MLflow accepts', () => {
    expect(parseAzureUri('wasbs://ml@acct.blob.core.windows.net/mlflow/1/abc/artifacts')).toEqual({
      kind: 'wasbs',
      container: 'ml',
      account: 'acct',
      suffix: 'blob.core.windows.net',
      rootPath: 'mlflow/1/abc/artifacts',
      blobAccountUrl: 'https://acct.blob.core.windows.net',
    });
    expect(parseAzureUri('wasbs://c@a.blob.core.chinacloudapi.cn').rootPath).toBe('');
    expect(parseAzureUri('wasbs://c@a.blob.core.usgovcloudapi.net/x/').blobAccountUrl).toBe('https://a.blob.core.usgovcloudapi.net');
    for (const bad of ['wasbs://c@a.dfs.core.windows.net/x', 'wasbs://a.blob.core.windows.net/x', 'wasbs://c@a.blob.example.com/x', 'wasb://c@a.blob.core.windows.net/x']) {
      expect(() => parseAzureUri(bad), bad).toThrow(InvalidArgumentError);
    }
  });

  it('reads abfss:// URIs with any suffix, percent-decodes the path, and maps dfs to the Blob endpoint', () => {
    expect(parseAzureUri('abfss://fs@acct.dfs.core.windows.net/ml%20runs/1/artifacts')).toMatchObject({
      kind: 'abfss',
      container: 'fs',
      account: 'acct',
      suffix: 'dfs.core.windows.net',
      rootPath: 'ml runs/1/artifacts',
      blobAccountUrl: 'https://acct.blob.core.windows.net',
    });
    expect(parseAzureUri('abfss://fs@acct.privatelink.dfs.core.windows.net/x').blobAccountUrl).toBe('https://acct.privatelink.blob.core.windows.net');
    expect(() => parseAzureUri('abfss://acct.dfs.core.windows.net/x')).toThrow(/abfss:\/\/<filesystem>@<account>/);
  });

  it("decodes an abfss:// path as MLflow does (Python's unquote): a % that starts no escape is kept, not refused", () => {
    const rootOf = (uri: string) => parseAzureUri(uri).rootPath;
    // The decoded paths are the ones urllib.parse.unquote(path).lstrip("/") gives (_parse_abfss_uri).
    expect(rootOf('abfss://fs@acct.dfs.core.windows.net/runs/100%/1/abc/artifacts')).toBe('runs/100%/1/abc/artifacts');
    expect(rootOf('abfss://fs@acct.dfs.core.windows.net/%zz')).toBe('%zz');
    expect(rootOf('abfss://fs@acct.dfs.core.windows.net/a%2/b%')).toBe('a%2/b%');
    expect(rootOf('abfss://fs@acct.dfs.core.windows.net/%E9t%C3%A9/x%25y')).toBe('\uFFFDt\u00E9/x%y');
  });
});

describe('resolveAzureConfig', () => {
  const cs = 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VrcmV0LWtleS1Rczk=;EndpointSuffix=core.windows.net';

  it('picks wasbs:// credentials in MLflow order: connection string, access key, then DefaultAzureCredential', () => {
    const all = { AZURE_STORAGE_CONNECTION_STRING: cs, AZURE_STORAGE_ACCESS_KEY: 'a2V5', AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=abc' };
    expect(resolveAzureConfig('wasbs', {}, all).auth).toMatchObject({ kind: 'connection-string', source: 'AZURE_STORAGE_CONNECTION_STRING' });
    expect(resolveAzureConfig('wasbs', {}, { AZURE_STORAGE_ACCESS_KEY: 'a2V5' }).auth).toMatchObject({ kind: 'account-key', source: 'AZURE_STORAGE_ACCESS_KEY' });
    // A SAS token is an abfss:// variable in MLflow; wasbs:// ignores it, as MLflow does.
    expect(resolveAzureConfig('wasbs', {}, { AZURE_STORAGE_SAS_TOKEN: 'sv=1&sig=abc' }).auth.kind).toBe('default-azure-credential');
    expect(resolveAzureConfig('wasbs', { accountKey: 'b3B0' }, all).auth).toMatchObject({ kind: 'connection-string' });
    expect(resolveAzureConfig('wasbs', { connectionString: cs }, {}).auth).toMatchObject({ source: 'the connectionString option' });
    const credential = { getToken: async () => null };
    expect(resolveAzureConfig('wasbs', { credential }, {}).auth).toMatchObject({ kind: 'token-credential' });
  });

  it('picks abfss:// credentials in MLflow order: SAS token, then DefaultAzureCredential', () => {
    const all = { AZURE_STORAGE_CONNECTION_STRING: cs, AZURE_STORAGE_ACCESS_KEY: 'a2V5', AZURE_STORAGE_SAS_TOKEN: '?sv=1&sig=abc%2Bdef' };
    expect(resolveAzureConfig('abfss', {}, all).auth).toEqual({ kind: 'sas-token', sasToken: 'sv=1&sig=abc%2Bdef', source: 'AZURE_STORAGE_SAS_TOKEN' });
    expect(resolveAzureConfig('abfss', {}, { AZURE_STORAGE_CONNECTION_STRING: cs }).auth.kind).toBe('default-azure-credential');
    expect(() => resolveAzureConfig('abfss', {}, { AZURE_STORAGE_SAS_TOKEN: 'not-a-sas' })).toThrow(/AZURE_STORAGE_SAS_TOKEN is not a SAS token/);
    expect(() => resolveAzureConfig('abfss', { connectionString: cs }, {})).toThrow(/applies to wasbs:\/\/ URIs only/);
    expect(() => resolveAzureConfig('wasbs', { sasToken: 'sv=1&sig=x' }, {})).toThrow(/applies to abfss:\/\/ URIs only/);
  });

  it('refuses a whole SAS URL as the SAS token before any request, with a hint and without its signature; a leading ? still works', () => {
    const signature = 'U2lnbmF0dXJlT2ZUaGlzU0FT%2Bx%3D';
    const url = `https://acct.blob.core.windows.net/fs?sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig=${signature}`;
    let sdkLoads = 0;
    const loadSdk = { storageBlob: async () => void sdkLoads++ as never, identity: async () => void sdkLoads++ as never };
    for (const [options, source] of [
      [{ env: { AZURE_STORAGE_SAS_TOKEN: url } }, 'AZURE_STORAGE_SAS_TOKEN'],
      [{ env: { AZURE_STORAGE_SAS_TOKEN: ` ?${url}` } }, 'AZURE_STORAGE_SAS_TOKEN'],
      [{ env: {}, sasToken: url }, 'sasToken'],
      [{ env: {}, sasToken: url.replace('https://', '') }, 'sasToken'],
    ] as const) {
      let error: unknown;
      try {
        new AzureBlobArtifactStore('abfss://fs@acct.dfs.core.windows.net/x', { ...options, loadSdk });
      } catch (e) {
        error = e;
      }
      expect(error, source).toBeInstanceOf(ConfigError);
      const config = error as ConfigError;
      expect(config.message).toMatch(/holds a whole SAS URL, not a SAS token/);
      expect(config.hint).toMatch(/only the query part of the SAS URL, after its "\?": "sv=\.\.\.&sig=\.\.\."/);
      expect(config.issues).toEqual([{ path: source, message: 'a URL, not the query string of a SAS' }]);
      for (const text of [config.message, JSON.stringify(config.toJSON())]) {
        expect(text).not.toContain('U2lnbmF0dXJl');
        expect(text).not.toContain('sp=rwdlac');
      }
    }
    expect(sdkLoads).toBe(0);
    expect(resolveAzureConfig('abfss', {}, { AZURE_STORAGE_SAS_TOKEN: `?sv=2022-11-02&sig=${signature}` }).auth).toMatchObject({
      kind: 'sas-token',
      sasToken: `sv=2022-11-02&sig=${signature}`,
    });
  });

  it('reads MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT (seconds, 600 by default, 0 meaning the default as in MLflow)', () => {
    expect(resolveAzureConfig('wasbs', {}, {}).requestTimeoutMs).toBe(600_000);
    expect(resolveAzureConfig('wasbs', {}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '30' }).requestTimeoutMs).toBe(30_000);
    expect(resolveAzureConfig('wasbs', {}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '0' }).requestTimeoutMs).toBe(600_000);
    expect(resolveAzureConfig('wasbs', { requestTimeoutSeconds: 5 }, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '30' }).requestTimeoutMs).toBe(5000);
    expect(() => resolveAzureConfig('wasbs', {}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: 'soon' })).toThrow(ConfigError);
    // Node's largest timer (~24.8 days): a larger one fires after 1 ms.
    expect(resolveAzureConfig('wasbs', {}, { MLFLOW_ARTIFACT_UPLOAD_DOWNLOAD_TIMEOUT: '3000000' }).requestTimeoutMs).toBe(2_147_483_647);
    expect(resolveAzureConfig('wasbs', { requestTimeoutSeconds: 1e9 }, {}).requestTimeoutMs).toBe(2_147_483_647);
  });

  it('defaults to 8 MiB blocks, 4 at a time, single Put Blob up to the block size; refuses bad values', () => {
    expect(resolveAzureConfig('wasbs', {}, {})).toMatchObject({ blockSize: 8 * MiB, concurrency: 4, maxSinglePutSize: 8 * MiB });
    expect(resolveAzureConfig('wasbs', { blockSize: MiB, maxSinglePutSize: 64 * MiB }, {})).toMatchObject({ blockSize: MiB, maxSinglePutSize: 64 * MiB });
    expect(() => resolveAzureConfig('wasbs', { blockSize: 0 }, {})).toThrow(/blockSize must be an integer/);
    expect(() => resolveAzureConfig('wasbs', { blockSize: 5000 * MiB }, {})).toThrow(/blockSize/);
    expect(() => resolveAzureConfig('wasbs', { concurrency: 0 }, {})).toThrow(/concurrency/);
    expect(() => resolveAzureConfig('wasbs', { blobEndpoint: 'ftp://x' }, {})).toThrow(/blobEndpoint must be an http/);
    expect(() => resolveAzureConfig('wasbs', { credential: {} as never }, {})).toThrow(/getToken/);
  });

  it('grows the block size so a file needs at most 50,000 blocks', () => {
    expect(effectiveBlockSize(10 * 1024 * MiB, 8 * MiB)).toBe(8 * MiB);
    expect(effectiveBlockSize(500 * 1024 * MiB, 8 * MiB)).toBe(11 * MiB);
  });

  it('masks account keys and SAS signatures wherever they show up', () => {
    resolveAzureConfig('wasbs', {}, { AZURE_STORAGE_CONNECTION_STRING: cs });
    expect(redact(`failed with ${cs}`)).not.toContain('c2VrcmV0LWtleS1Rczk=');
    expect(redact('DefaultEndpointsProtocol=http;AccountName=x;AccountKey=abcdEFGH1234==;BlobEndpoint=http://h/x;')).toBe(
      'DefaultEndpointsProtocol=http;AccountName=x;AccountKey=***;BlobEndpoint=http://h/x;',
    );
    expect(redact('BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2022&sig=abc')).toContain('SharedAccessSignature=***');
    resolveAzureConfig('abfss', { sasToken: 'sv=2022-11-02&sp=rw&sig=Zm9vYmFyYmF6%2Fqux%3D' }, {});
    expect(redact('the token sv=2022-11-02&sp=rw&sig=Zm9vYmFyYmF6%2Fqux%3D leaked')).not.toContain('Zm9vYmFyYmF6');
    expect(redact('decoded Zm9vYmFyYmF6/qux= too')).not.toContain('Zm9vYmFyYmF6');
  });

  it('the store refuses a bad URI or option when it is made, before any request', () => {
    expect(() => new AzureBlobArtifactStore('wasbs://nope', { env: {} })).toThrow(InvalidArgumentError);
    expect(() => new AzureBlobArtifactStore('abfss://fs@a.dfs.core.windows.net/x', { env: { AZURE_STORAGE_SAS_TOKEN: 'x' } })).toThrow(/not a SAS token/);
    const store = new AzureBlobArtifactStore('abfss://fs@a.dfs.core.windows.net/ml%20x/', { env: {} });
    expect(store.artifactUri).toBe('abfss://fs@a.dfs.core.windows.net/ml x');
    expect(store.describe()).toMatch(/via https:\/\/a\.blob\.core\.windows\.net \(DefaultAzureCredential \(@azure\/identity\)\)/);
  });
});
