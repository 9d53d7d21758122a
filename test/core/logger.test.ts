import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, LocalPathError, isArtifactUploaderError } from '../../src/core/errors.js';
import { createStreamLogger, redact, redactForJson, redactingLogger, redactUrl, registerSecret } from '../../src/core/logger.js';

/** A token of the shape the Hub hands out (`hf_` and 34 letters or digits), known to no one. */
const HUB_TOKEN = 'hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567';

describe('redact', () => {
  it('masks URL userinfo, Authorization values, Hub tokens and registered secrets', () => {
    expect(redact('GET https://bob:hunter22@mlflow.example.com/api')).toBe('GET https://***@mlflow.example.com/api');
    // A password with an unescaped @: userinfo runs to the last @ of the authority, as URL parsers read it.
    expect(redact('GET http://bob:p@ss@127.0.0.1:5000/api failed')).toBe('GET http://***@127.0.0.1:5000/api failed');
    expect(redact('{"url":"https://a:b@h","mail":"me@example.com"} and https://x:y@z/p@q')).toBe('{"url":"https://***@h","mail":"me@example.com"} and https://***@z/p@q');
    expect(redact('authorization: Bearer abc.def')).toBe('authorization: Bearer ***');
    expect(redact('{"Authorization":"Basic Zm9vOmJhcg=="}')).toBe('{"Authorization":"Basic ***"}');
    expect(redact(`token ${HUB_TOKEN} used`)).toBe('token hf_*** used');
    // File names are not tokens: a Hub token is `hf_` and 34 letters or digits.
    expect(redact('ckpt/hf_weights.bin, hf_export/adapter.bin and hf_adapter_model.safetensors')).toBe('ckpt/hf_weights.bin, hf_export/adapter.bin and hf_adapter_model.safetensors');
    registerSecret('s3cr3t-value');
    expect(redact(`x=s3cr3t-value&y=${encodeURIComponent('s3cr3t-value')}`)).toBe('x=***&y=***');
  });

  it('masks the values of secret env vars', () => {
    process.env.MLFLOW_TRACKING_PASSWORD = 'pw-from-env-42';
    try {
      expect(redact('login failed for pw-from-env-42')).toBe('login failed for ***');
    } finally {
      delete process.env.MLFLOW_TRACKING_PASSWORD;
    }
  });

  it('masks the signature and credentials of presigned URLs', () => {
    const url =
      'http://127.0.0.1:9000/b/k?partNumber=2&uploadId=u1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&X-Amz-Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7';
    const masked = redactUrl(url);
    expect(masked).toContain('partNumber=2&uploadId=u1&X-Amz-Algorithm=AWS4-HMAC-SHA256');
    expect(masked).toContain('X-Amz-Signature=***');
    expect(masked).not.toMatch(/5d672d79|AKIAEXAMPLE|FwoGZXIv/);
    expect(redact(`retrying PUT ${url} in 0 ms`)).not.toContain('5d672d79');
    expect(redact('https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030&sig=abc%2Bdef%3D&sp=w')).toBe('https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2030&sig=***&sp=w');
    expect(redact('https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=abc')).toBe('https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA&Expires=1&Signature=***');
    expect(redact('https://storage.googleapis.com/b/o?X-Goog-Signature=0a1b')).toBe('https://storage.googleapis.com/b/o?X-Goog-Signature=***');
    // Only query parameters: prose and other parameters stay readable.
    expect(redact('the Signature= header and ?signed=1&design=x')).toBe('the Signature= header and ?signed=1&design=x');
  });

  it('masks them in a query string quoted in XML (`&amp;`), as S3 quotes the request in a SignatureDoesNotMatch body', () => {
    const body =
      '<Error><Code>SignatureDoesNotMatch</Code><SignatureProvided>5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7</SignatureProvided>' +
      '<CanonicalRequest>PUT\n/b/k\nX-Amz-Algorithm=AWS4-HMAC-SHA256&amp;X-Amz-Credential=ASIAEXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&amp;X-Amz-Date=20250101T000000Z' +
      '&amp;X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLE&amp;X-Amz-SignedHeaders=host&amp;partNumber=1&amp;uploadId=u1\nhost:b.s3.amazonaws.com</CanonicalRequest></Error>';
    const masked = redact(body);
    expect(masked).not.toMatch(/5d672d79|ASIAEXAMPLE|FwoGZXIv/);
    expect(masked).toContain('<SignatureProvided>***</SignatureProvided>');
    expect(masked).toContain('X-Amz-Algorithm=AWS4-HMAC-SHA256&amp;X-Amz-Credential=***&amp;X-Amz-Date=20250101T000000Z&amp;X-Amz-Security-Token=***&amp;X-Amz-SignedHeaders=host&amp;partNumber=1');
    // The same document as a JSON field (an error's `body` in --json) stays valid JSON.
    expect(JSON.parse(JSON.stringify(redactForJson({ body })))).toEqual({ body: masked });
  });

  it('drops credentials from URLs', () => {
    expect(redactUrl('https://u:p@host:5000/path?q=1')).toBe('https://host:5000/path?q=1');
    expect(redactUrl('not a url')).toBe('not a url');
  });
});

describe('loggers', () => {
  it('stream logger filters by level and redacts', () => {
    let out = '';
    const stream = new Writable({ write(chunk, _e, cb) { out += String(chunk); cb(); } });
    const log = createStreamLogger({ level: 'warn', stream });
    log.info('hidden');
    log.warn(`token ${HUB_TOKEN} leaked?`, { url: 'https://a:b@h/' });
    expect(out).not.toContain('hidden');
    expect(out).toContain('warn: token hf_*** leaked?');
    expect(out).not.toContain('a:b@');
  });

  it('redacting logger protects user loggers', () => {
    const seen: string[] = [];
    const inner = { debug: (m: string) => seen.push(m), info: (m: string, f?: object) => seen.push(m + JSON.stringify(f)), warn() {}, error() {} };
    const log = redactingLogger(inner);
    log.info('uri https://x:y@h', { token: 'Authorization: Bearer zzz' });
    expect(seen.join(' ')).not.toMatch(/x:y@|zzz/);
  });
});

describe('redaction of JSON and of escaped text', () => {
  it('the redacting logger hands on numbers as they were when a secret is a run of digits, and never throws', () => {
    // A 5-digit password is weak but legal; masking it inside 1902105 made the fields invalid JSON, and the logger threw.
    registerSecret('90210');
    const seen: Array<Record<string, unknown> | undefined> = [];
    const inner = { debug() {}, info: (_m: string, f?: Record<string, unknown>) => void seen.push(f), warn() {}, error() {} };
    redactingLogger(inner).info('uploaded', { size: 1902105, ratio: 0.902105, runId: 'ab90210cd', note: 'pw 90210' });
    expect(seen).toEqual([{ size: 1902105, ratio: 0.902105, runId: 'ab***cd', note: 'pw ***' }]);
  });

  it('masks a secret holding a quote or a backslash in log fields, which are JSON-escaped on the way out', () => {
    const secret = 'qu"ote\\slash-secret';
    registerSecret(secret);
    let out = '';
    const stream = new Writable({ write(chunk, _e, cb) { out += String(chunk); cb(); } });
    createStreamLogger({ level: 'debug', stream }).warn('refused', { body: `{"message":"bad password ${secret}"}`, status: 401 });
    const seen: Array<Record<string, unknown> | undefined> = [];
    redactingLogger({ debug() {}, info() {}, warn: (_m: string, f?: Record<string, unknown>) => void seen.push(f), error() {} }).warn('refused', { body: secret });
    expect(out).not.toContain('ote');
    expect(JSON.parse(out.slice(out.indexOf('{')))).toEqual({ body: '{"message":"bad password ***"}', status: 401 });
    expect(seen).toEqual([{ body: '***' }]);
  });

  it('masks Authorization values given as a field of their own', () => {
    const seen: string[] = [];
    const inner = { debug() {}, info: (_m: string, f?: object) => void seen.push(JSON.stringify(f)), warn() {}, error() {} };
    redactingLogger(inner).info('request', { headers: { Authorization: 'Bearer tok-in-a-field', 'proxy-authorization': 'Basic cHJveHk6cHc=' } });
    expect(JSON.parse(seen[0]!)).toEqual({ headers: { Authorization: 'Bearer ***', 'proxy-authorization': 'Basic ***' } });
  });

  it('never takes the backslash of an escaped quote in text (JSON inside a JSON string)', () => {
    // A server's JSON error body, quoted as a string of another JSON text: every mask must leave \" whole.
    const nested = (inner: object) => JSON.stringify({ body: JSON.stringify(inner) });
    const cases: Array<[object, object]> = [
      [{ message: 'rejected header Authorization: Bearer abc123' }, { message: 'rejected header Authorization: Bearer ***' }],
      [{ Authorization: 'Basic Zm9vOmJhcg==' }, { Authorization: 'Basic ***' }],
      [{ url: 'https://h.example.com/k?X-Amz-Signature=5d672d79' }, { url: 'https://h.example.com/k?X-Amz-Signature=***' }],
      [{ url: 'https://acct.blob.core.windows.net/c/b?sv=1&sig=abc%2Bdef' }, { url: 'https://acct.blob.core.windows.net/c/b?sv=1&sig=***' }],
      [{ cs: 'AccountName=a;AccountKey=a2V5a2V5' }, { cs: 'AccountName=a;AccountKey=***' }],
    ];
    for (const [inner, masked] of cases) {
      const text = redact(nested(inner));
      expect(text).toBe(nested(masked));
      expect(JSON.parse(JSON.parse(text).body)).toEqual(masked);
    }
  });
});

describe('Azure container URIs', () => {
  it('keep the container (file system) before the @ of wasbs://, wasb://, abfss:// and abfs://', () => {
    for (const scheme of ['wasbs', 'wasb', 'abfss', 'abfs']) {
      const host = scheme.startsWith('abfs') ? 'devstoreaccount1.dfs.core.windows.net' : 'devstoreaccount1.blob.core.windows.net';
      const uri = `${scheme}://ml-artifacts@${host}/mlflow/0/abc/artifacts/model.onnx`;
      expect(redact(`Azure Put Blob of ${uri} failed: 403`)).toBe(`Azure Put Blob of ${uri} failed: 403`);
      expect(redactUrl(uri)).toBe(uri);
      // A password in their userinfo is still a credential.
      expect(redact(`${scheme}://ml-artifacts:s3cr3tpw@${host}/x`)).toBe(`${scheme}://***@${host}/x`);
      expect(redactUrl(`${scheme}://ml-artifacts:s3cr3tpw@${host}/x`)).toBe(`${scheme}://${host}/x`);
    }
    // Not a container name (upper case, an encoded character): masked, as any other userinfo.
    expect(redact('wasbs://Tok%2Fen@acct.blob.core.windows.net/x')).toBe('wasbs://***@acct.blob.core.windows.net/x');
    // Other schemes: a bare user name may be a token, as in https://<token>@host.
    expect(redact('https://ghp_tokenvalue@github.example.com/x')).toBe('https://***@github.example.com/x');
    expect(redact('s3://ml-artifacts@bucket/x')).toBe('s3://***@bucket/x');
  });
});

describe('errors', () => {
  it('carry code, hint and context, and serialise without the cause', () => {
    const error = new LocalPathError('PATH_NOT_FOUND', '/nope', 'No file at /nope.', { hint: 'Check the path.', cause: new Error('ENOENT') });
    expect(error.message).toBe('No file at /nope. Check the path.');
    expect(error.toJSON()).toMatchObject({ name: 'LocalPathError', code: 'PATH_NOT_FOUND', path: '/nope', hint: 'Check the path.' });
    expect(error.toJSON()).not.toHaveProperty('cause');
    expect(isArtifactUploaderError(error)).toBe(true);
    expect(isArtifactUploaderError(new Error('x'))).toBe(false);
    expect(new ConfigError('bad', { file: 'a.yaml', issues: [{ path: 'x', message: 'y' }] }).issues).toHaveLength(1);
  });
});
