import { describe, expect, it } from 'vitest';
import { ConfigError, InvalidArgumentError, LocalPathError, UnsupportedArtifactStoreError } from '../../src/core/errors.js';
import {
  artifactPathProblem,
  assertArtifactPath,
  encodeArtifactPath,
  guessContentType,
  isMultipartUnsupportedError,
} from '../../src/mlflow/artifacts-api.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { LocalFileStore } from '../../src/stores/local-file-store.js';
import { LARGEST_RANGE_BYTES } from '../../src/stores/file-ranges.js';
import {
  effectiveChunkSize,
  MlflowArtifactsStore,
  resolveMultipartOptions,
  resolveProxiedArtifactUri,
} from '../../src/stores/mlflow-artifacts-store.js';
import { resolveArtifactStore, supportedArtifactStores } from '../../src/stores/resolve.js';

const rest = resolveMlflowConnection({ trackingUri: 'http://127.0.0.1:1/prefix' }, {});
const file = resolveMlflowConnection({ trackingUri: 'file:/tmp/mlruns' }, {});

describe('artifact paths', () => {
  it('accepts ordinary, spaced and unicode names', () => {
    for (const ok of ['a.txt', 'model/v1/weights.bin', 'with space/ünïcødé 模型.json', '100%.txt', 'a..b']) {
      expect(artifactPathProblem(ok)).toBeUndefined();
    }
  });

  it('rejects what MLflow rejects or would rename, saying why', () => {
    const cases: Record<string, RegExp> = {
      'a#b': /"#"/,
      '../x': /"\.\."/,
      'a/../b': /"\.\."/,
      'a\\b': /backslash/,
      '/abs/x': /absolute/,
      'C:/x': /absolute/,
      'line\nbreak': /control character/,
      'nul\u0000': /control character/,
      'a%2Fb': /%XX/,
      'a//b': /empty segment/,
      './a': /"\."/,
      '': /empty/,
    };
    for (const [path, reason] of Object.entries(cases)) {
      expect(artifactPathProblem(path)?.reason, path).toMatch(reason);
    }
    expect(artifactPathProblem('', { allowEmpty: true })).toBeUndefined();
  });

  it('throws LocalPathError INVALID_ARTIFACT_PATH with what to rename', () => {
    const error = (() => {
      try {
        assertArtifactPath('notes#1.txt');
      } catch (e) {
        return e;
      }
    })() as LocalPathError;
    expect(error).toBeInstanceOf(LocalPathError);
    expect(error.code).toBe('INVALID_ARTIFACT_PATH');
    expect(error.path).toBe('notes#1.txt');
    expect(error.message).toMatch(/notes#1\.txt/);
    expect(error.hint).toMatch(/Rename/);
  });

  it('percent-encodes each segment', () => {
    expect(encodeArtifactPath('a b/ü?x/c#')).toBe('a%20b/%C3%BC%3Fx/c%23');
  });

  it('guesses Content-Type as MLflow does', () => {
    expect(guessContentType('metrics.json')).toBe('text/plain');
    expect(guessContentType('dir/MLmodel')).toBe('text/plain');
    expect(guessContentType('plot.png')).toBe('image/png');
    expect(guessContentType('model.tar.gz')).toBe('application/x-tar');
    expect(guessContentType('model.safetensors')).toBe('application/octet-stream');
    expect(guessContentType('noext')).toBe('application/octet-stream');
  });

  it('recognises "multipart unsupported" answers', () => {
    expect(isMultipartUnsupportedError({ status: 501, errorCode: 'NOT_IMPLEMENTED', endpoint: 'mlflow-artifacts/mpu/create' })).toBe(true);
    expect(isMultipartUnsupportedError({ status: 404, errorCode: 'HTTP_404', endpoint: 'mlflow-artifacts/mpu/create' })).toBe(true);
    expect(isMultipartUnsupportedError({ status: 500, errorCode: 'INTERNAL_ERROR', endpoint: 'mlflow-artifacts/mpu/create' })).toBe(false);
    expect(isMultipartUnsupportedError({ status: 501, endpoint: 'mlflow-artifacts/artifacts' })).toBe(false);
  });
});

describe('resolveProxiedArtifactUri', () => {
  it('rewrites mlflow-artifacts: against the tracking URI, keeping its prefix', () => {
    expect(resolveProxiedArtifactUri('mlflow-artifacts:/1/abc/artifacts', 'http://mlflow:5000/prefix')).toEqual({
      baseUrl: 'http://mlflow:5000/prefix',
      root: '1/abc/artifacts',
    });
  });

  it('honours a host in the URI', () => {
    expect(resolveProxiedArtifactUri('mlflow-artifacts://other:6000/1/abc/artifacts', 'https://mlflow:5000')).toEqual({
      baseUrl: 'https://other:6000',
      root: '1/abc/artifacts',
    });
  });

  it('splits http(s) proxy URLs at the service root', () => {
    expect(resolveProxiedArtifactUri('https://h:1/p/api/2.0/mlflow-artifacts/artifacts/2/r/artifacts', undefined)).toEqual({
      baseUrl: 'https://h:1/p',
      root: '2/r/artifacts',
    });
  });

  it('refuses a port without a host, and mlflow-artifacts: with a local tracking store', () => {
    expect(() => resolveProxiedArtifactUri('mlflow-artifacts://5000/x', 'http://h')).toThrow(InvalidArgumentError);
    expect(() => resolveProxiedArtifactUri('mlflow-artifacts:/1/x', undefined)).toThrow(ConfigError);
  });

  it('refuses http URLs that are not an artifact proxy', () => {
    expect(() => resolveProxiedArtifactUri('https://example.com/bucket/x', undefined)).toThrow(UnsupportedArtifactStoreError);
  });
});

describe('resolveArtifactStore', () => {
  it('chooses by scheme as MLflow does', () => {
    expect(resolveArtifactStore('mlflow-artifacts:/0/r/artifacts', { connection: rest })).toBeInstanceOf(MlflowArtifactsStore);
    expect(resolveArtifactStore('http://127.0.0.1:1/api/2.0/mlflow-artifacts/artifacts/0/r/artifacts', { connection: rest }).kind).toBe(
      'mlflow-artifacts',
    );
    expect(resolveArtifactStore('file:///tmp/mlruns/0/r/artifacts', { connection: file })).toBeInstanceOf(LocalFileStore);
    expect(resolveArtifactStore('/tmp/mlruns/0/r/artifacts', { connection: file })).toBeInstanceOf(LocalFileStore);
    expect((resolveArtifactStore('file:/tmp/x', { connection: rest }) as LocalFileStore).root).toBe('/tmp/x');
  });

  it('describes where the bytes go', () => {
    const store = resolveArtifactStore('mlflow-artifacts:/0/r/artifacts', { connection: rest, multipart: { thresholdBytes: 64 * 1024 ** 2 } });
    expect(store.describe()).toMatch(/http:\/\/127\.0\.0\.1:1\/prefix.*>= 64 MiB.*10 MiB parts/);
    expect(resolveArtifactStore('/tmp/a', { connection: file }).describe()).toMatch(/\/tmp\/a.*atomic/);
  });

  it('names the scheme and the proxied alternative for stores it cannot write to', () => {
    for (const uri of ['dbfs:/databricks/x', 'runs:/abc/model', 'ftp://h/x']) {
      let error: unknown;
      try {
        resolveArtifactStore(uri, { connection: rest });
      } catch (e) {
        error = e;
      }
      expect(error, uri).toBeInstanceOf(UnsupportedArtifactStoreError);
      const e = error as UnsupportedArtifactStoreError;
      const scheme = uri.slice(0, uri.indexOf(':'));
      expect(e.scheme).toBe(scheme);
      expect(e.message).toContain(`"${scheme}:"`);
      expect(e.message).toContain('mlflow-artifacts:');
      expect(e.message).toMatch(/Supported: [^.]*s3:.*gs:.*wasbs: and abfss:/);
      expect(e.hint).toMatch(scheme === 'runs' ? /run id/ : /--serve-artifacts/);
    }
    expect(supportedArtifactStores()).toHaveLength(6);
    expect(supportedArtifactStores().map((label) => label.split(' ')[0])).toEqual(['mlflow-artifacts:', 'file:', 's3:', 'gs:', 'wasbs:', 'azureml:']);
  });
});

describe('multipart options', () => {
  it('default to on above 500 MiB in 10 MiB parts, 4 at a time', () => {
    expect(resolveMultipartOptions({}, {})).toEqual({ enabled: true, thresholdBytes: 500 * 1024 ** 2, chunkBytes: 10 * 1024 ** 2, partConcurrency: 4, maxPartConcurrency: 16 });
  });

  it('read MLflow env vars; options win', () => {
    const env = {
      MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD: 'false',
      MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE: '1000',
      MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE: '2000',
    };
    expect(resolveMultipartOptions({}, env)).toMatchObject({ enabled: false, thresholdBytes: 1000, chunkBytes: 2000 });
    expect(resolveMultipartOptions({ enabled: true, chunkBytes: 5 }, env)).toMatchObject({ enabled: true, thresholdBytes: 1000, chunkBytes: 5 });
  });

  it('reject nonsense, naming the option', () => {
    expect(() => resolveMultipartOptions({ partConcurrency: 0 }, {})).toThrow(/multipart\.partConcurrency/);
    expect(() => resolveMultipartOptions({ chunkBytes: 0.5 }, {})).toThrow(/multipart\.chunkBytes/);
    // Each part is read into one Buffer: a part larger than Node allows failed mid-upload, after mpu/create.
    expect(() => resolveMultipartOptions({ chunkBytes: LARGEST_RANGE_BYTES + 1 }, {})).toThrow(/multipart\.chunkBytes must be an integer from 1 to \d+ \(the largest Buffer/);
    expect(resolveMultipartOptions({ chunkBytes: LARGEST_RANGE_BYTES }, {}).chunkBytes).toBe(LARGEST_RANGE_BYTES);
    expect(() => resolveMultipartOptions({}, { MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE: 'big' })).toThrow(/MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE/);
  });

  it('grow the part size so no file needs more than 10,000 parts', () => {
    const MiB = 1024 ** 2;
    expect(effectiveChunkSize(100 * MiB, 10 * MiB)).toBe(10 * MiB);
    const grown = effectiveChunkSize(200_000 * MiB, 10 * MiB);
    expect(Math.ceil((200_000 * MiB) / grown)).toBeLessThanOrEqual(10_000);
  });
});
