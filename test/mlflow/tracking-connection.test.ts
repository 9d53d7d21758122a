/** Resolving the tracking URI, auth and TLS the way MLflow's client does, and MLflow's error bodies. */
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, InvalidArgumentError, MlflowApiError } from '../../src/core/errors.js';
import { isRetryableError, isThrottlingError } from '../../src/core/retry.js';
import { DEFAULT_TRACKING_URI, mlflowErrorMapper, resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { fileUriToPath } from '../../src/mlflow/tracking-uri.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { LocalFileStore } from '../../src/stores/local-file-store.js';
import { startTestServer } from '../support/http-test-server.js';

const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.all(closers.map((c) => c()));
});


/** The ConfigError resolving a connection from `options` and `env` throws (a test failure when it is accepted). */
function refusedConnection(options: { trackingUri?: string }, env: Record<string, string> = {}): ConfigError {
  try {
    resolveMlflowConnection(options, env);
  } catch (e) {
    return e as ConfigError;
  }
  throw new Error(`${options.trackingUri ?? env.MLFLOW_TRACKING_URI} was accepted`);
}

describe('resolveMlflowConnection', () => {
  it('option beats MLFLOW_TRACKING_URI beats ./mlruns', () => {
    expect(DEFAULT_TRACKING_URI).toBe('file:./mlruns');
    const byDefault = resolveMlflowConnection({}, {});
    expect(byDefault).toMatchObject({ kind: 'file', root: join(process.cwd(), 'mlruns'), displayUri: 'file:./mlruns' });
    expect(resolveMlflowConnection({}, { MLFLOW_TRACKING_URI: 'http://127.0.0.1:5000/' })).toMatchObject({ kind: 'rest', baseUrl: 'http://127.0.0.1:5000' });
    expect(resolveMlflowConnection({ trackingUri: 'file:///srv/mlruns' }, { MLFLOW_TRACKING_URI: 'http://127.0.0.1:5000' })).toMatchObject({ kind: 'file', root: '/srv/mlruns' });
    expect(resolveMlflowConnection({ trackingUri: '/abs/store' }, {})).toMatchObject({ kind: 'file', root: '/abs/store' });
    expect(resolveMlflowConnection({ trackingUri: 'https://mlflow.example.com/prefix/' }, {})).toMatchObject({ kind: 'rest', baseUrl: 'https://mlflow.example.com/prefix' });
    expect(fileUriToPath('file:runs', '/work')).toBe('/work/runs');
    expect(fileUriToPath('file:///a%20b/c')).toBe('/a b/c');
  });

  it('refuses what it cannot talk to, saying what to do', () => {
    expect(() => resolveMlflowConnection({ trackingUri: '  ' }, {})).toThrow(InvalidArgumentError);
    const sqlite = (() => {
      try {
        resolveMlflowConnection({ trackingUri: 'sqlite:///mlflow.db' }, {});
      } catch (e) {
        return e;
      }
    })();
    expect(sqlite).toBeInstanceOf(ConfigError);
    expect((sqlite as ConfigError).hint).toMatch(/mlflow server --backend-store-uri sqlite:/);
    expect(() => resolveMlflowConnection({ trackingUri: 'ftp://host/x' }, {})).toThrow(/"ftp:" is not supported/);
    expect(() => resolveMlflowConnection({ trackingUri: 'http://[bad' }, {})).toThrow(ConfigError);
    expect(() => resolveMlflowConnection({ trackingUri: 'https://h', caCertPath: '/ca.pem' }, { MLFLOW_TRACKING_INSECURE_TLS: 'true' })).toThrow(/cannot both be set/);
    expect(() => resolveMlflowConnection({ trackingUri: 'https://h' }, { MLFLOW_TRACKING_INSECURE_TLS: 'maybe' })).toThrow(/MLFLOW_TRACKING_INSECURE_TLS/);
  });

  it('a file:// URI with a host (file://mlruns) is a ConfigError that says how to write the path, not a TypeError', () => {
    const refused = (uri: string) => {
      try {
        resolveMlflowConnection({ trackingUri: uri }, {});
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error(`${uri} was accepted`);
    };
    const hostForm = refused('file://mlruns');
    expect(hostForm).toBeInstanceOf(ConfigError);
    expect(hostForm.message).toContain('file://mlruns names host "mlruns"');
    expect(hostForm.hint).toMatch(/file:mlruns, file:\/\/\/abs\/path or a plain path/);
    expect(refused('file://mlruns/sub').hint).toContain('file:mlruns/sub');
    // Other file: URLs Node cannot map to a path are ConfigErrors too, each with a hint.
    for (const uri of ['file:///a%2Fb', 'file://[bad']) {
      expect(refused(uri)).toBeInstanceOf(ConfigError);
      expect(refused(uri).hint).toBeTruthy();
    }
    expect(fileUriToPath('file://localhost/srv/mlruns')).toBe('/srv/mlruns');
  });

  it('a file: URI with its scheme in capitals (FILE:///x) is a ConfigError saying to write it in lower case, not a directory named "FILE:" in the working directory', () => {
    for (const [uri, lower] of [
      ['FILE:///srv/mlruns', 'file:///srv/mlruns'],
      ['File:/srv/mlruns', 'file:/srv/mlruns'],
      ['FILE:mlruns', 'file:mlruns'],
    ] as const) {
      // Before: '/work/FILE:/srv/mlruns', where MLflow's client puts it too (local_file_uri_to_path
      // strips only a lower-case "file:"), a directory nobody meant.
      const asPath = (() => {
        try {
          return fileUriToPath(uri, '/work', 'MLFLOW_TRACKING_URI');
        } catch (error) {
          return error;
        }
      })();
      expect(asPath).toBeInstanceOf(ConfigError);
      expect(asPath).toMatchObject({
        message: expect.stringContaining(`${uri} writes its scheme "${uri.slice(0, 5)}" in capitals: MLflow's client would take it for a relative path and use a directory named "${uri.slice(0, 5)}" in the working directory.`),
        hint: `Write the scheme in lower case: ${lower} (or give a plain path).`,
        issues: [{ path: 'MLFLOW_TRACKING_URI', message: 'file: URI with a scheme not in lower case' }],
      });
      expect(() => resolveMlflowConnection({ trackingUri: uri }, {})).toThrow(ConfigError);
      expect(() => resolveMlflowConnection({}, { MLFLOW_TRACKING_URI: uri })).toThrow(/in capitals/);
      // A run's artifact URI written so: the file: store refuses it the same way, before a copy.
      expect(() => new LocalFileStore({ artifactUri: uri, cwd: '/work' })).toThrow(/in capitals/);
    }
    expect(fileUriToPath('file:///srv/mlruns', '/work')).toBe('/srv/mlruns');
  });

  it('refuses scheme-less values MLflow reads as Databricks, and host:port without http://, before taking them as a path', () => {
    // MLflow maps these bare names to its Databricks / Unity Catalog stores, never to a directory.
    for (const uri of ['databricks', 'databricks://my-profile', 'databricks-uc', 'uc']) {
      const error = refusedConnection({ trackingUri: uri });
      expect(error, uri).toBeInstanceOf(ConfigError);
      expect(error.hint, uri).toMatch(/Databricks/);
    }
    expect(refusedConnection({ trackingUri: 'uc' }).message).toContain('Unity Catalog');
    const fromEnv = refusedConnection({}, { MLFLOW_TRACKING_URI: 'databricks' });
    expect(fromEnv.issues[0]?.path).toBe('MLFLOW_TRACKING_URI');
    expect(fromEnv.hint).toContain('file:databricks');
    // A server address without its scheme: MLflow takes an IP:port as a directory of that name
    // and refuses a hostname:port as an unknown scheme; either way http:// was forgotten.
    expect(refusedConnection({ trackingUri: '127.0.0.1:5917' }).hint).toMatch(/did you mean http:\/\/127\.0\.0\.1:5917\?/i);
    expect(refusedConnection({ trackingUri: '[::1]:5000/prefix' }).hint).toMatch(/did you mean http:\/\/\[::1\]:5000\/prefix\?/i);
    expect(refusedConnection({ trackingUri: 'localhost:5917' }).hint).toBe('Did you mean http://localhost:5917?');
    expect(refusedConnection({ trackingUri: 'mlflow.example.com:443' }).hint).toMatch(/did you mean https:\/\/mlflow\.example\.com:443\?/i);
    // With credentials, the user name reads as the scheme; the password is never shown.
    const withPassword = refusedConnection({ trackingUri: 'bob:s3cr3tPW@127.0.0.1:5000' });
    expect(withPassword.hint).toBe('Did you mean http://***@127.0.0.1:5000?');
    expect(JSON.stringify({ ...withPassword.toJSON(), message: withPassword.message })).not.toMatch(/s3cr3tPW|bob/);
    expect(refusedConnection({ trackingUri: 'bob:s3cr3tPW@mlflow.example.com:443/x' }).hint).toBe('Did you mean https://***@mlflow.example.com:443/x?');
    expect(refusedConnection({ trackingUri: 'bob:s3/cr3t@mlflow.internal' }).message).not.toContain('cr3t');
    // A password with an @ of its own: a URL's userinfo ends at the last @, so all of it is hidden.
    const atInPassword = refusedConnection({ trackingUri: 'bob:p@ssw0rd@127.0.0.1:5000' });
    expect(atInPassword.hint).toBe('Did you mean http://***@127.0.0.1:5000?');
    expect(JSON.stringify({ ...atInPassword.toJSON(), message: atInPassword.message })).not.toContain('ssw0rd');
    // Spelt as a path, the same names are a local store.
    expect(resolveMlflowConnection({ trackingUri: 'file:127.0.0.1:5917' }, {})).toMatchObject({ kind: 'file', root: join(process.cwd(), '127.0.0.1:5917') });
    expect(resolveMlflowConnection({ trackingUri: './databricks' }, {})).toMatchObject({ kind: 'file', root: join(process.cwd(), 'databricks') });
    expect(resolveMlflowConnection({ trackingUri: 'file:databricks' }, {})).toMatchObject({ kind: 'file' });
  });

  it('refuses a tracking URI wrapped in quotes instead of writing to a directory named after it', () => {
    // `docker run --env-file`, a Kubernetes `value: '"http://..."'` or a CI variable keep the
    // quotes: the value has no scheme then, and ./"http:/mlflow:5000" took the artifacts while
    // the job reported success.
    const fromEnv = refusedConnection({}, { MLFLOW_TRACKING_URI: '"http://mlflow:5000"' });
    expect(fromEnv).toBeInstanceOf(ConfigError);
    expect(fromEnv.issues[0]?.path).toBe('MLFLOW_TRACKING_URI');
    expect(fromEnv.message).toContain('quotes');
    expect(fromEnv.hint).toContain('http://mlflow:5000');
    for (const uri of ["'http://127.0.0.1:5000'", '"file:./mlruns"', '"/srv/mlruns"', '"http://127.0.0.1:5000', "./mlruns'"]) {
      const error = refusedConnection({ trackingUri: uri });
      expect(error, uri).toBeInstanceOf(ConfigError);
      expect(error.issues[0]?.path, uri).toBe('trackingUri');
      expect(error.hint, uri).toMatch(/without the quotes/);
    }
    for (const uri of ['"http://bob:s3cr3tPW@mlflow:5000"', '"http://bob:s3/cr3tPW@mlflow:5000"']) {
      const withPassword = refusedConnection({}, { MLFLOW_TRACKING_URI: uri });
      expect(withPassword.message).toMatch(/Tracking URI "http:\/\/(\*\*\*@)?mlflow:5000\/?" \(MLFLOW_TRACKING_URI\)/);
      expect(`${withPassword.message} ${JSON.stringify(withPassword)}`).not.toContain('cr3tPW');
    }
    // A quote inside a path is still a path.
    expect(resolveMlflowConnection({ trackingUri: "/srv/bob's runs/mlruns" }, {})).toMatchObject({ kind: 'file', root: "/srv/bob's runs/mlruns" });
  });

  it('an empty MLFLOW_TRACKING_URI is unset, as in MLflow; a blank one, or an empty trackingUri option, is refused naming it', () => {
    expect(resolveMlflowConnection({}, { MLFLOW_TRACKING_URI: '' })).toMatchObject({ kind: 'file', root: join(process.cwd(), 'mlruns') });
    const caught = (run: () => unknown) => {
      try {
        run();
      } catch (e) {
        return e as ConfigError | InvalidArgumentError;
      }
      throw new Error('accepted');
    };
    const blankEnv = caught(() => resolveMlflowConnection({}, { MLFLOW_TRACKING_URI: ' \t' }));
    expect(blankEnv).toBeInstanceOf(ConfigError);
    expect((blankEnv as ConfigError).issues[0]?.path).toBe('MLFLOW_TRACKING_URI');
    expect(blankEnv.hint).toMatch(/unset it/i);
    const emptyOption = caught(() => resolveMlflowConnection({ trackingUri: '' }, { MLFLOW_TRACKING_URI: 'http://127.0.0.1:5000' }));
    expect(emptyOption).toBeInstanceOf(InvalidArgumentError);
    expect((emptyOption as InvalidArgumentError).argument).toBe('trackingUri');
    expect(emptyOption.hint).toMatch(/leave it out/);
  });

  it('bad MLflow env values and a tracking URL that does not parse are ConfigErrors whose hint says what to set', () => {
    const caught = (trackingUri: string, env: Record<string, string>) => {
      try {
        resolveMlflowConnection({ trackingUri }, env);
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('accepted');
    };
    const retries = caught('http://127.0.0.1:5000', { MLFLOW_HTTP_REQUEST_MAX_RETRIES: 'abc' });
    expect(retries).toBeInstanceOf(ConfigError);
    expect(retries.hint).toMatch(/Set MLFLOW_HTTP_REQUEST_MAX_RETRIES to an integer from 0 to 10, or unset it/);
    const insecure = caught('https://h', { MLFLOW_TRACKING_INSECURE_TLS: 'yes' });
    expect(insecure.hint).toMatch(/Set MLFLOW_TRACKING_INSECURE_TLS to true or false/);
    const notUrl = caught('http://', {});
    expect(notUrl.message).toMatch(/is not a valid URL/);
    expect(notUrl.hint).toMatch(/http\(s\):\/\/host\[:port\]/);
  });

  it('a tracking URL that does not parse because of its password never shows the password (message, context, cause)', () => {
    // A generated password holds "/", "#" or "?" unencoded: no URL parser finds the userinfo
    // then, and the whole URI, password included, went into the message and the cause's input.
    for (const uri of ['http://bob:pa/ss99word@mlflow.example.com', 'https://bob:pa#ss99word@mlflow.example.com', 'http://bob:pa?ss99word@mlflow.example.com:5000', 'file://bob:pa/ss99word@[bad/x']) {
      for (const attempt of [() => resolveMlflowConnection({ trackingUri: uri }, {}), () => resolveMlflowConnection({}, { MLFLOW_TRACKING_URI: uri })]) {
        const error = (() => {
          try {
            attempt();
          } catch (e) {
            return e as ConfigError;
          }
          throw new Error(`accepted ${uri}`);
        })();
        expect(error).toBeInstanceOf(ConfigError);
        expect(error.message).toMatch(/mlflow\.example\.com|not a valid/);
        const everything = `${error.message} ${JSON.stringify(error)} ${inspect(error, { depth: 5 })}`;
        expect(everything).not.toContain('ss99word');
        expect(everything).not.toContain('bob:pa');
      }
    }
  });

  it('maps an Azure ML workspace URI (azureml://) to its https MLflow REST base and its run-history base', () => {
    const workspace = '/mlflow/v2.0/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1';
    const uri = `azureml://westeurope.api.azureml.ms${workspace}`;
    const conn = resolveMlflowConnection({ trackingUri: uri }, { MLFLOW_TRACKING_TOKEN: 'eyJ.job-token' });
    expect(conn).toMatchObject({ kind: 'rest', baseUrl: `https://westeurope.api.azureml.ms${workspace}`, displayUri: uri });
    expect(resolveMlflowConnection({ trackingUri: `${uri}/` }, { MLFLOW_TRACKING_TOKEN: 't' })).toMatchObject({ baseUrl: `https://westeurope.api.azureml.ms${workspace}` });
    expect(resolveMlflowConnection({}, { MLFLOW_TRACKING_URI: uri, MLFLOW_TRACKING_TOKEN: 't' })).toMatchObject({ kind: 'rest' });
    expect(conn.kind === 'rest' && conn.azureMl).toEqual({
      origin: 'https://westeurope.api.azureml.ms',
      subscriptionId: 'sub-1',
      resourceGroup: 'rg-1',
      workspace: 'ws-1',
      mlflowBaseUrl: `https://westeurope.api.azureml.ms${workspace}`,
      historyBaseUrl: `https://westeurope.api.azureml.ms${workspace.replace('/mlflow/v2.0', '/history/v1.0')}`,
    });
    // Without a token it resolves too: the token comes from DefaultAzureCredential on the first request (test/mlflow/azureml-auth.test.ts).
    expect(resolveMlflowConnection({ trackingUri: uri }, {})).toMatchObject({ kind: 'rest' });
    expect(() => resolveMlflowConnection({ trackingUri: 'azureml://westeurope.api.azureml.ms/mlflow/v2.0/subscriptions/s' }, { MLFLOW_TRACKING_TOKEN: 't' })).toThrow(
      /is not an Azure ML workspace URI/,
    );
  });

  it('sends Basic auth from userinfo or env (over a token, as MLflow), Bearer otherwise, and never shows the secret', async () => {
    const server = await startTestServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ experiment: { experiment_id: '0', name: 'Default' } }));
    });
    closers.push(() => server.close());
    const port = new URL(server.url).port;
    const withUserinfo = createTrackingClient({ trackingUri: `http://alice:s3cr%3At@127.0.0.1:${port}`, env: { MLFLOW_TRACKING_TOKEN: 'tok-123' } });
    expect(withUserinfo.trackingUri).toBe(`http://127.0.0.1:${port}`);
    expect(withUserinfo.describe()).not.toMatch(/s3cr/);
    await withUserinfo.getExperiment('0');
    await createTrackingClient({ trackingUri: server.url, env: { MLFLOW_TRACKING_TOKEN: 'tok-123' } }).getExperiment('0');
    await createTrackingClient({ trackingUri: server.url, env: { MLFLOW_TRACKING_USERNAME: 'bob', MLFLOW_TRACKING_PASSWORD: 'pw', MLFLOW_TRACKING_TOKEN: 'tok-123' } }).getExperiment('0');
    // A "%" that starts no escape is kept as written, as requests' unquote does (it was a bare URIError).
    await createTrackingClient({ trackingUri: `http://carol:pa%ss%3A100%@127.0.0.1:${port}`, env: {} }).getExperiment('0');
    expect(server.requests.map((r) => r.headers.authorization)).toEqual([
      `Basic ${Buffer.from('alice:s3cr:t').toString('base64')}`,
      'Bearer tok-123',
      `Basic ${Buffer.from('bob:pw').toString('base64')}`,
      `Basic ${Buffer.from('carol:pa%ss:100%').toString('base64')}`,
    ]);
    expect(server.requests[0]!.headers['user-agent']).toMatch(/^artifact-uploader\//);
  });
});

describe('a token that cannot go into a header', () => {
  it('is a ConfigError naming where it came from, not minutes of retried "network errors"', async () => {
    const server = await startTestServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ experiment: { experiment_id: '0', name: 'Default' } }));
    });
    closers.push(() => server.close());
    // A Kubernetes secret made with --from-file, or a .env file with CRLF line ends, ends in a
    // line break. Node refuses the header (ERR_INVALID_CHAR), which was read as a network
    // error: retried 7 times with backoff, then "check that the server is running".
    const cases: Array<[string, Parameters<typeof resolveMlflowConnection>[0], Record<string, string>]> = [
      ['MLFLOW_TRACKING_TOKEN', {}, { MLFLOW_TRACKING_TOKEN: 'tok-secret-1\n' }],
      ['MLFLOW_TRACKING_TOKEN', {}, { MLFLOW_TRACKING_TOKEN: 'tok-secret-1\r\n' }],
      ['token', { token: 'tok-secret-1\nmore' }, {}],
    ];
    for (const [source, options, env] of cases) {
      const error = (() => {
        try {
          resolveMlflowConnection({ trackingUri: server.url, ...options }, { ...env, MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0' });
        } catch (e) {
          return e as ConfigError;
        }
        throw new Error(`accepted a token from ${source}`);
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.issues[0]?.path).toBe(source);
      expect(error.message).toContain(source);
      expect(error.hint).toMatch(/line break/);
      expect(`${error.message} ${JSON.stringify(error)}`).not.toContain('tok-secret-1');
    }
    expect(server.requests).toHaveLength(0);
    // A token of header-safe characters still goes out as it is.
    await createTrackingClient({ trackingUri: server.url, env: { MLFLOW_TRACKING_TOKEN: 'tok-secret-1' } }).getExperiment('0');
    expect(server.requests.map((r) => r.headers.authorization)).toEqual(['Bearer tok-secret-1']);
  });
});

describe('mlflowErrorMapper', () => {
  const map = (status: number, bodyText: string, endpoint = 'mlflow/runs/get') =>
    mlflowErrorMapper(endpoint)({ status, bodyText, headers: {}, method: 'GET', url: 'http://127.0.0.1:5000/api/2.0/mlflow/runs/get?run_id=x' });

  it('reads MLflow JSON, falls back to the status for other bodies, and hints', () => {
    const json = map(404, JSON.stringify({ error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'Run with id=x not found' }));
    expect(json).toBeInstanceOf(MlflowApiError);
    expect(json).toMatchObject({ status: 404, errorCode: 'RESOURCE_DOES_NOT_EXIST', endpoint: 'mlflow/runs/get' });
    expect(json.message).toMatch(/^MLflow GET mlflow\/runs\/get failed with 404 RESOURCE_DOES_NOT_EXIST: Run with id=x not found/);
    expect(json.hint).toMatch(/run id does not exist on the server at http:\/\/127\.0\.0\.1:5000/);

    expect(map(502, '<html><body>Bad gateway</body></html>')).toMatchObject({ errorCode: 'HTTP_502', message: expect.stringMatching(/\(HTML error page\)/) });
    expect(map(400, JSON.stringify({ error_code: 400, message: 'numeric' })).errorCode).toBe('HTTP_400');
    expect(map(401, '').hint).toMatch(/MLFLOW_TRACKING_TOKEN/);
    expect(map(403, '').hint).toMatch(/permission/);
    expect(map(404, JSON.stringify({ error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'x' }), 'mlflow/experiments/get').hint).toMatch(/No such experiment/);
    expect(map(400, JSON.stringify({ error_code: 'INVALID_PARAMETER_VALUE', message: 'The run x must be in the active state. It is deleted' }), 'mlflow/runs/log-batch').hint).toMatch(/deleted/);
    expect(map(503, 'unavailable', 'mlflow-artifacts/artifacts').hint).toMatch(/--serve-artifacts/);
    expect(map(500, '{}').hint).toMatch(/retried/);
    expect(map(418, '').hint).toBeUndefined();
  });

  it('reads the 503 of a route the server\'s flags switch off as permanent, with what to do (FastAPI JSON and Flask text)', () => {
    const fastApi = map(503, JSON.stringify({ detail: 'Artifact serving is disabled. Run `mlflow server` with `--serve-artifacts` to enable.' }), 'mlflow-artifacts/artifacts');
    expect(fastApi).toMatchObject({ status: 503, errorCode: 'ENDPOINT_DISABLED', message: expect.stringMatching(/503 ENDPOINT_DISABLED: Artifact serving is disabled/) });
    expect(fastApi.hint).toMatch(/does not serve artifacts: start it with `mlflow server --serve-artifacts`/);
    const flask = map(503, 'Endpoint: /api/2.0/mlflow-artifacts/mpu/create/<path:artifact_path> disabled due to the mlflow server running with `--no-serve-artifacts`. To enable artifacts server functionality, run `mlflow server` with `--serve-artifacts`', 'mlflow-artifacts/mpu/create');
    expect(flask.errorCode).toBe('ENDPOINT_DISABLED');
    const artifactsOnly = map(503, 'Endpoint: /api/2.0/mlflow/runs/get disabled due to the mlflow server running in `--artifacts-only` mode. To enable tracking server functionality, run `mlflow server` without `--artifacts-only`');
    expect(artifactsOnly).toMatchObject({ errorCode: 'ENDPOINT_DISABLED', hint: expect.stringMatching(/runs with `--artifacts-only`.*point the tracking URI at the tracking server/) });
    for (const error of [fastApi, flask, artifactsOnly]) {
      expect(isRetryableError(error)).toBe(false);
      expect(isThrottlingError(error)).toBe(false);
    }
    // Any other 503 is load, and retried.
    expect(isRetryableError(map(503, 'unavailable', 'mlflow-artifacts/artifacts'))).toBe(true);
  });

  it('says "retried" only of the statuses the policy retries, and what a 501 on multipart means', () => {
    const notSupported = JSON.stringify({ error_code: 'NOT_IMPLEMENTED', message: 'Multipart upload is not supported for the current artifact repository' });
    for (const hint of [map(501, notSupported, 'mlflow-artifacts/mpu/create').hint, map(404, 'Not Found', 'mlflow-artifacts/mpu/create').hint]) {
      expect(hint).toMatch(/cannot do multipart upload.*multipart\.enabled: false.*MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD=false.*Not retried/);
      expect(hint).not.toMatch(/was retried/);
    }
    expect(map(501, '').hint).toMatch(/does not implement.*Not retried/);
    for (const status of [500, 502, 503, 504]) expect(map(status, '{}').hint).toMatch(/was retried as often as the retry policy allows/);
    expect(map(429, '{}').hint).toMatch(/kept rate-limiting the requests \(429\) through every retry.*lower concurrency/);
    for (const status of [505, 507]) {
      expect(map(status, '{}').hint).toMatch(/not retried/);
      expect(map(status, '{}').hint).not.toMatch(/was retried/);
    }
  });
});
