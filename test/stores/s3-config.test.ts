import { constants as bufferConstants } from 'node:buffer';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { AbortedError, ConfigError, InvalidArgumentError, MissingDependencyError } from '../../src/core/errors.js';
import { guessMimeType } from '../../src/core/mime.js';
import { forcePathStyleFor, resolveS3Config } from '../../src/stores/s3-config.js';
import { effectivePartSize } from '../../src/stores/s3-multipart.js';
import { parseS3Uri, S3ArtifactStore } from '../../src/stores/s3-store.js';
import { describeWithServers } from '../support/servers.js';
import { runPython } from '../support/python.js';

const MiB = 1024 * 1024;

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** The messages of an error's cause chain: what `--verbose` prints. */
function chain(error: unknown): string[] {
  const out: string[] = [];
  for (let cause = (error as Error).cause; cause !== undefined; cause = (cause as Error).cause) {
    out.push(cause instanceof Error ? `${cause.message}\n${cause.stack ?? ''}` : String(cause));
  }
  return out;
}

describe('S3 configuration from MLflow env vars', () => {
  it('defaults: no endpoint, auto addressing (virtual on AWS), 8 MiB parts, 4 at a time', () => {
    expect(resolveS3Config({}, {})).toEqual({
      endpointUrl: undefined,
      ignoreTls: false,
      uploadExtraArgs: {},
      expectedBucketOwner: undefined,
      addressingStyle: 'auto',
      forcePathStyle: false,
      ignoreConfiguredEndpointUrls: false,
      region: undefined,
      credentials: undefined,
      partSize: 8 * MiB,
      queueSize: 4,
      maxQueueSize: 16,
    });
  });

  it('reads every MLFLOW_S3_* variable', () => {
    const config = resolveS3Config(
      {},
      {
        MLFLOW_S3_ENDPOINT_URL: 'https://minio.internal:9000/',
        MLFLOW_S3_IGNORE_TLS: 'true',
        MLFLOW_S3_UPLOAD_EXTRA_ARGS: '{"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "key-1", "Metadata": {"team": "ml"}, "Expires": "2030-01-01T00:00:00Z"}',
        MLFLOW_S3_EXPECTED_BUCKET_OWNER: '123456789012',
        MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE: 'virtual',
        AWS_DEFAULT_REGION: 'eu-west-3',
      },
    );
    expect(config.endpointUrl).toBe('https://minio.internal:9000');
    expect(config.ignoreTls).toBe(true);
    expect(config.uploadExtraArgs).toEqual({
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: 'key-1',
      Metadata: { team: 'ml' },
      Expires: new Date('2030-01-01T00:00:00Z'),
    });
    expect(config.expectedBucketOwner).toBe('123456789012');
    expect(config.addressingStyle).toBe('virtual');
    expect(config.forcePathStyle).toBe(false);
    expect(config.region).toBe('eu-west-3');
  });

  it('options win over env vars; AWS_REGION wins over AWS_DEFAULT_REGION', () => {
    const env = { MLFLOW_S3_ENDPOINT_URL: 'http://a:1', AWS_REGION: 'us-west-2', AWS_DEFAULT_REGION: 'eu-west-1', MLFLOW_S3_IGNORE_TLS: '1' };
    expect(resolveS3Config({}, env).region).toBe('us-west-2');
    // What botocore refuses (validate_region_name) is a ConfigError naming where it came from, not a late SDK failure.
    for (const [bad, source] of [[{ AWS_REGION: 'us-west-2 ' }, 'AWS_REGION'], [{ AWS_DEFAULT_REGION: '"eu-west-1"' }, 'AWS_DEFAULT_REGION'], [{ AWS_REGION: '-x' }, 'AWS_REGION'], [{ AWS_REGION: '123' }, 'AWS_REGION']] as const) {
      const error = (() => {
        try {
          resolveS3Config({}, bad);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error, source).toBeInstanceOf(ConfigError);
      expect(error, source).toMatchObject({ issues: [{ path: source }], hint: expect.stringContaining(`Set ${source} to a region such as us-east-1`) });
    }
    expect(() => resolveS3Config({ region: 'eu west' }, {})).toThrow(/s3\.region "eu west" is not an AWS region name/);
    const config = resolveS3Config({ endpointUrl: 'http://b:2', region: 'ap-south-1', ignoreTls: false, uploadExtraArgs: { StorageClass: 'STANDARD_IA' } }, env);
    expect(config).toMatchObject({ endpointUrl: 'http://b:2', region: 'ap-south-1', ignoreTls: false, uploadExtraArgs: { StorageClass: 'STANDARD_IA' } });
  });

  it('maps the addressing style the way botocore does', () => {
    // botocore/args.py: a custom endpoint forces path style unless "virtual" is asked for.
    expect(forcePathStyleFor('auto', 'http://127.0.0.1:9000')).toBe(true);
    expect(forcePathStyleFor('auto', 'https://minio.example.com')).toBe(true);
    expect(forcePathStyleFor('path', 'http://127.0.0.1:9000')).toBe(true);
    expect(forcePathStyleFor('virtual', 'https://minio.example.com')).toBe(false);
    // Against AWS itself, auto is virtual-hosted (the SDK falls back to path style for non-DNS names).
    expect(forcePathStyleFor('auto', undefined)).toBe(false);
    expect(forcePathStyleFor('virtual', undefined)).toBe(false);
    expect(forcePathStyleFor('path', undefined)).toBe(true);
    // The accelerate endpoint is AWS, not a custom one.
    expect(forcePathStyleFor('auto', 'https://s3-accelerate.amazonaws.com')).toBe(false);
    expect(resolveS3Config({}, { MLFLOW_S3_ENDPOINT_URL: 'http://127.0.0.1:9000' }).forcePathStyle).toBe(true);
  });

  it('takes the endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL as botocore does, path style included', () => {
    // MLflow passes endpoint_url=None when MLFLOW_S3_ENDPOINT_URL is unset, and botocore then
    // uses these; the AWS SDK reads them too, but addressing must follow: virtual-hosted
    // requests to bucket.minio:9000 do not resolve.
    expect(resolveS3Config({}, { AWS_ENDPOINT_URL_S3: 'http://minio:9000/' })).toMatchObject({ endpointUrl: 'http://minio:9000', forcePathStyle: true });
    expect(resolveS3Config({}, { AWS_ENDPOINT_URL: 'http://minio:9000' })).toMatchObject({ endpointUrl: 'http://minio:9000', forcePathStyle: true });
    expect(resolveS3Config({}, { AWS_ENDPOINT_URL_S3: 'http://s3only:1', AWS_ENDPOINT_URL: 'http://all:2' }).endpointUrl).toBe('http://s3only:1');
    expect(resolveS3Config({}, { MLFLOW_S3_ENDPOINT_URL: 'http://mlflow:3', AWS_ENDPOINT_URL_S3: 'http://s3only:1' }).endpointUrl).toBe('http://mlflow:3');
    expect(resolveS3Config({}, { AWS_ENDPOINT_URL_S3: 'http://s3only:1', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' })).toMatchObject({ endpointUrl: undefined, forcePathStyle: false, ignoreConfiguredEndpointUrls: true });
    const bad = thrown(() => resolveS3Config({}, { AWS_ENDPOINT_URL_S3: 'minio:9000' })) as ConfigError;
    expect(bad).toBeInstanceOf(ConfigError);
    expect(bad.message).toContain('AWS_ENDPOINT_URL_S3');
    expect(bad.hint).toContain('http://minio:9000');
  });

  it('masks the password of an endpoint URL it refuses', () => {
    const error = thrown(() => resolveS3Config({ endpointUrl: 'http://gw:pw-secret-3k@min io:9000' }, {})) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('s3.endpointUrl');
    for (const text of [error.message, JSON.stringify(error.toJSON())]) expect(text).not.toContain('pw-secret-3k');
  });

  it('refuses MLFLOW_S3_UPLOAD_EXTRA_ARGS that is not JSON, naming the variable', () => {
    const error = thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: "{'ServerSideEncryption': 'AES256'}" })) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('MLFLOW_S3_UPLOAD_EXTRA_ARGS');
    expect(error.message).toMatch(/not valid JSON/);
    expect(error.hint).toMatch(/\{"ServerSideEncryption": "AES256"\}/);
    expect(error.issues[0]?.path).toBe('MLFLOW_S3_UPLOAD_EXTRA_ARGS');
  });

  it('never quotes an SSE-C key of MLFLOW_S3_UPLOAD_EXTRA_ARGS in its error, even when the JSON is bad', () => {
    // V8's JSON.parse message quotes the text around the fault ('..."omerKey": c2VjcmV0a2"...'),
    // and a value that is not a string used to be printed: both are pieces of the key.
    const key = 'c2VjcmV0a2V5c2VjcmV0a2V5c2VjcmV0a2V5MDA';
    for (const raw of [`{"SSECustomerKey": ${key}}`, `{"SSECustomerKey": "${key}" "ACL": "private"}`, `{"SSECustomerKey": [${JSON.stringify(key)}]}`]) {
      const error = thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: raw })) as ConfigError;
      expect(error, raw).toBeInstanceOf(ConfigError);
      const shown = [error.message, JSON.stringify(error.toJSON()), ...chain(error)].join('\n');
      for (let at = 0; at + 6 <= key.length; at++) expect(shown, raw).not.toContain(key.slice(at, at + 6));
    }
    const bad = thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: `{"SSECustomerKey": ${key}}` })) as ConfigError;
    expect(bad.message).toMatch(/MLFLOW_S3_UPLOAD_EXTRA_ARGS is not valid JSON/);
    const list = thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: `{"SSECustomerKey": [${JSON.stringify(key)}]}` })) as ConfigError;
    expect(list.message).toMatch(/"SSECustomerKey" = a list; expected a string/);
  });

  it('refuses extra args boto3 would refuse, and non-objects', () => {
    const unknown = thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: '{"ServerSideEncyption": "AES256"}' })) as ConfigError;
    expect(unknown).toBeInstanceOf(ConfigError);
    expect(unknown.message).toMatch(/"ServerSideEncyption", which is not an upload argument. Allowed: ACL, /);
    expect(thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: '["AES256"]' }))).toBeInstanceOf(ConfigError);
    expect(thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: '{"Expires": "soon"}' }))).toBeInstanceOf(ConfigError);
    expect(thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: '{"StorageClass": 3}' }))).toBeInstanceOf(ConfigError);
    expect(thrown(() => resolveS3Config({ uploadExtraArgs: { Metadata: { a: 1 } } }, {}))).toBeInstanceOf(ConfigError);
    for (const raw of ['{"ServerSideEncyption": "AES256"}', '["AES256"]', '{"Expires": "soon"}']) {
      expect((thrown(() => resolveS3Config({}, { MLFLOW_S3_UPLOAD_EXTRA_ARGS: raw })) as ConfigError).hint, raw).toBeTruthy();
    }
  });

  it('refuses a bad addressing style, endpoint, part size or queue size', () => {
    const style = thrown(() => resolveS3Config({}, { MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE: 'dns' })) as ConfigError;
    expect(style).toBeInstanceOf(ConfigError);
    expect(style.message).toContain('MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE');
    expect(style.hint).toMatch(/Set MLFLOW_BOTO_CLIENT_ADDRESSING_STYLE to path/);
    const noScheme = thrown(() => resolveS3Config({}, { MLFLOW_S3_ENDPOINT_URL: 'minio:9000' })) as ConfigError;
    expect(noScheme).toBeInstanceOf(ConfigError);
    expect(noScheme.hint).toMatch(/did you mean http:\/\/minio:9000\?/i);
    expect((thrown(() => resolveS3Config({ endpointUrl: 'http://' }, {})) as ConfigError).hint).toMatch(/http:\/\/127\.0\.0\.1:9000/);
    expect(thrown(() => resolveS3Config({}, { MLFLOW_S3_IGNORE_TLS: 'maybe' }))).toBeInstanceOf(ConfigError);
    const part = thrown(() => resolveS3Config({ partSize: 1024 * 1024 }, {})) as InvalidArgumentError;
    expect(part).toBeInstanceOf(InvalidArgumentError);
    expect(part.message).toMatch(/5 MiB/);
    expect(thrown(() => resolveS3Config({ queueSize: 0 }, {}))).toBeInstanceOf(InvalidArgumentError);
  });

  it('accepts no part size larger than one Buffer of this Node.js holds (each part is read into one)', () => {
    // Node 20 caps a Buffer at 4 GiB, S3 a part at 5 GiB: a 4.5 GiB part used to pass the check
    // and fail mid-upload with a bare RangeError from Buffer.allocUnsafe.
    for (const partSize of [4 * 1024 * MiB, 4 * 1024 * MiB + 1, 5 * 1024 * MiB]) {
      let accepted = true;
      try {
        resolveS3Config({ partSize }, {});
      } catch (error) {
        expect(error, String(partSize)).toBeInstanceOf(InvalidArgumentError);
        expect((error as Error).message).toMatch(/largest Buffer this Node\.js can allocate/);
        accepted = false;
      }
      expect(accepted && partSize > bufferConstants.MAX_LENGTH, `partSize ${partSize} accepted, Buffer max ${bufferConstants.MAX_LENGTH}`).toBe(false);
    }
  });

  it('grows the part size so a file never needs more than 10,000 parts', () => {
    expect(effectivePartSize(11 * MiB, 5 * MiB)).toBe(5 * MiB);
    expect(effectivePartSize(200 * 1024 * MiB, 8 * MiB)).toBe(21 * MiB);
    expect(Math.ceil((200 * 1024 * MiB) / effectivePartSize(200 * 1024 * MiB, 8 * MiB))).toBeLessThanOrEqual(10_000);
  });

  it('splits s3:// URIs the way MLflow does', () => {
    expect(parseS3Uri('s3://bucket/direct/1/abc/artifacts')).toEqual({ bucket: 'bucket', rootKey: 'direct/1/abc/artifacts' });
    expect(parseS3Uri('s3://bucket')).toEqual({ bucket: 'bucket', rootKey: '' });
    expect(parseS3Uri('s3://bucket/a/')).toEqual({ bucket: 'bucket', rootKey: 'a' });
    expect(thrown(() => parseS3Uri('gs://bucket/a'))).toBeInstanceOf(InvalidArgumentError);
  });
});

describe('Content-Type and Content-Encoding as MLflow sends them to S3', () => {
  it('follows Python mimetypes.guess_type with its built-in table', () => {
    expect(guessMimeType('dir/metrics.json')).toEqual({ type: 'application/json' });
    expect(guessMimeType('ckpt.tar.gz')).toEqual({ type: 'application/x-tar', encoding: 'gzip' });
    expect(guessMimeType('ckpt.tgz')).toEqual({ type: 'application/x-tar', encoding: 'gzip' });
    expect(guessMimeType('weights.gz')).toEqual({ encoding: 'gzip' });
    expect(guessMimeType('model.safetensors')).toEqual({});
    expect(guessMimeType('README.TXT')).toEqual({ type: 'text/plain' });
    expect(guessMimeType('.bashrc')).toEqual({});
    expect(guessMimeType('MLmodel')).toEqual({});
  });
});

describe('without the AWS SDK installed', () => {
  const moduleNotFound = (name: string) =>
    Object.assign(new Error(`Cannot find package '${name}' imported from /app/node_modules/artifact-uploader/dist/index.js`), {
      code: 'ERR_MODULE_NOT_FOUND',
    });

  it('says which packages to install, on first use of an s3:// URI', async () => {
    let loads = 0;
    const store = new S3ArtifactStore('s3://bucket/root', {
      env: {},
      loadSdk: async () => {
        loads++;
        throw moduleNotFound('@aws-sdk/client-s3');
      },
    });
    expect(loads).toBe(0); // constructing the store imports nothing
    const error = await store.list().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingDependencyError);
    const e = error as MissingDependencyError;
    expect(e.code).toBe('MISSING_DEPENDENCY');
    // Only the client: the store drives multipart uploads itself, without @aws-sdk/lib-storage.
    expect(e.packages).toEqual(['@aws-sdk/client-s3']);
    expect(e.message).toContain('s3:// artifact root needs @aws-sdk/client-s3, which is not installed');
    expect(e.hint).toBe('Install it: npm install @aws-sdk/client-s3');
    expect(loads).toBe(1);
  });

  it('recognises a real failed import', async () => {
    const store = new S3ArtifactStore('s3://bucket/root', {
      env: {},
      loadSdk: async () => {
        const name = '@aws-sdk/not-installed-' + 'anywhere';
        const clientS3 = (await import(/* @vite-ignore */ name)) as object;
        return { clientS3 };
      },
    });
    await expect(store.list()).rejects.toBeInstanceOf(MissingDependencyError);
  });

  it('refuses a module that is not AWS SDK v3', async () => {
    const store = new S3ArtifactStore('s3://bucket/root', { env: {}, loadSdk: async () => ({ clientS3: {} }) });
    const error = (await store.list().catch((e: unknown) => e)) as MissingDependencyError;
    expect(error).toBeInstanceOf(MissingDependencyError);
    expect(error.hint).toMatch(/does not look like v3/);
  });

  it('passes other loader failures through untouched', async () => {
    const boom = new SyntaxError('Unexpected token');
    const store = new S3ArtifactStore('s3://bucket/root', { env: {}, loadSdk: async () => Promise.reject(boom) });
    await expect(store.list()).rejects.toBe(boom);
  });
});

describeWithServers('Endpoint from AWS_ENDPOINT_URL_S3 against botocore', () => {
  it('addresses the bucket where boto3 (as MLflow builds it) would', async () => {
    const env = { AWS_ENDPOINT_URL_S3: 'http://minio.example:9000', AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' };
    // A presigned URL is built offline: it shows the host and path botocore would send to.
    const out = await runPython(
      [
        'import os',
        "for name in ('MLFLOW_S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', 'AWS_PROFILE'): os.environ.pop(name, None)",
        'from mlflow.store.artifact.s3_artifact_repo import _get_s3_client',
        "print(_get_s3_client(region_name='us-east-1').generate_presigned_url('put_object', Params={'Bucket': 'models', 'Key': 'k'}).split('?')[0])",
      ].join('\n'),
      { env },
    );
    const config = resolveS3Config({}, env);
    const url = out.trim().split('\n').pop();
    expect(url).toBe('http://minio.example:9000/models/k');
    expect(`${config.endpointUrl}${config.forcePathStyle ? '/models/k' : ''}`).toBe(url);
  });
});

describeWithServers('Endpoint from the AWS config file against botocore', () => {
  it('addresses the bucket where boto3 (as MLflow builds it) would, for a profile\'s endpoint_url and its services section; AWS_IGNORE_CONFIGURED_ENDPOINT_URLS turns both off', async () => {
    const dir = await mkdtemp(join(tmpdir(), 's3-config-file-'));
    const configFile = join(dir, 'config');
    const endpoint = 'http://minio.example:9000';
    await writeFile(configFile, ['[profile own]', `endpoint_url = ${endpoint}`, '', '[profile services]', 'services = local', '', '[services local]', 's3 =', `  endpoint_url = ${endpoint}`, ''].join('\n'));
    /**
     * Where MLflow's boto3 client would PUT `models/k` with each env (a presigned URL is built
     * offline): one interpreter, a new boto3 session and no cached MLflow client per env.
     */
    const botocoreUrls = async (envs: Array<Record<string, string>>): Promise<string[]> => {
      const out = await runPython(
        [
          'import json, os, sys, boto3',
          'from mlflow.store.artifact.s3_artifact_repo import _cached_get_s3_client, _get_s3_client',
          'for env in json.loads(sys.argv[1]):',
          "    for name in ('MLFLOW_S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS', 'AWS_CONFIG_FILE', 'AWS_PROFILE'): os.environ.pop(name, None)",
          '    os.environ.update(env)',
          '    boto3.DEFAULT_SESSION = None',
          '    _cached_get_s3_client.cache_clear()',
          "    print(_get_s3_client(region_name='us-east-1').generate_presigned_url('put_object', Params={'Bucket': 'models', 'Key': 'k'}).split('?')[0])",
        ].join('\n'),
        { env: { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' }, args: [JSON.stringify(envs)] },
      );
      return out.trim().split('\n').slice(-envs.length);
    };
    /** Where ours sends: the store's description once its client is made (the request itself stopped before it leaves). */
    const oursUrl = async (env: Record<string, string>): Promise<string> => {
      for (const name of ['MLFLOW_S3_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS']) vi.stubEnv(name, undefined);
      for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
      try {
        const store = new S3ArtifactStore('s3://models/root', { env, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, region: 'us-east-1' });
        await expect(store.list(undefined, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError);
        const [, where, style] = / via (endpoint \S+|AWS \S+) \((path-style|virtual-hosted)\)/.exec(store.describe()) ?? [];
        if (where === 'AWS us-east-1') return style === 'path-style' ? 'https://s3.amazonaws.com/models/k' : 'https://models.s3.amazonaws.com/k';
        return `${where?.replace(/^endpoint /, '')}${style === 'path-style' ? '/models/k' : '(virtual-hosted)'}`;
      } finally {
        vi.unstubAllEnvs();
      }
    };
    const cases = ['own', 'services'].flatMap((profile) => {
      const env = { AWS_CONFIG_FILE: configFile, AWS_PROFILE: profile };
      return [
        { env, url: `${endpoint}/models/k` },
        { env: { ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }, url: 'https://models.s3.amazonaws.com/k' },
      ];
    });
    expect(await botocoreUrls(cases.map((c) => c.env))).toEqual(cases.map((c) => c.url));
    for (const { env, url } of cases) expect(await oursUrl(env), JSON.stringify(env)).toBe(url);
  });
});

describeWithServers('Content-Type table against Python', () => {
  it('matches mimetypes.MimeTypes().guess_type for names an ML pipeline writes', async () => {
    const names = [
      'a.json', 'a.txt', 'a.csv', 'a.tsv', 'a.html', 'a.png', 'a.jpg', 'a.JPEG', 'a.svg', 'a.pdf', 'a.zip', 'a.tar', 'a.tar.gz',
      'a.tgz', 'a.tar.bz2', 'a.tbz2', 'a.txz', 'a.gz', 'a.bz2', 'a.xz', 'a.Z', 'a.br', 'a.GZ', 'a.yaml', 'a.yml', 'a.py', 'a.md',
      'a.onnx', 'a.safetensors', 'a.pkl', 'a.pt', 'a.bin', 'a.h5', 'a.parquet', 'a.npy', 'a.log', 'a.xml', 'a.js', 'a.mp4',
      'a.wav', 'a.webp', 'a.svgz', 'MLmodel', '.hidden', '..gz', 'x.', 'dir.d/file', 'a.b.c.json', 'a.gz.tar',
    ];
    const out = await runPython(
      'import json, mimetypes, sys\nm = mimetypes.MimeTypes()\nprint(json.dumps({n: m.guess_type(n) for n in sys.argv[1:]}))',
      { args: names },
    );
    const python = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, [string | null, string | null]>;
    for (const name of names) {
      const [type, encoding] = python[name] ?? [null, null];
      expect(guessMimeType(name), name).toEqual({ ...(type ? { type } : {}), ...(encoding ? { encoding } : {}) });
    }
  });
});
