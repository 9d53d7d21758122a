/**
 * MLflow's other two ways in: the `~/.mlflow/credentials` file (held to what MLflow's own
 * Python client sends to the same server) and mutual TLS with MLFLOW_TRACKING_CLIENT_CERT_PATH
 * (against a real HTTPS server that demands a client certificate signed by its CA), whose CA is
 * trusted from a file or, as requests takes it, a directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { defaultCredentialsPath, readMlflowCredentialsFile } from '../../src/mlflow/credentials-file.js';
import { resolveMlflowConnection } from '../../src/mlflow/connection.js';
import { createTrackingClient } from '../../src/mlflow/tracking-client.js';
import { ArtifactUploader } from '../../src/uploader/artifact-uploader.js';
import { scratch, serverRun, writeTree } from '../uploader/helpers.js';
import { startTestServer } from '../support/http-test-server.js';
import { runPython } from '../support/python.js';
import { describeWithServers, mlflowServer } from '../support/servers.js';

const root = mkdtempSync(join(tmpdir(), 'au-creds-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const experimentAnswer = JSON.stringify({ experiment: { experiment_id: '0', name: 'Default', lifecycle_stage: 'active' } });

function homeWithCredentials(name: string, text: string): string {
  const home = join(root, name);
  mkdirSync(join(home, '.mlflow'), { recursive: true });
  writeFileSync(join(home, '.mlflow', 'credentials'), text);
  return home;
}

/** A server that records requests and answers every one with experiment 0. */
const experimentServer = () =>
  startTestServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(experimentAnswer);
  });

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('~/.mlflow/credentials', () => {
  it('parses the [mlflow] section as configparser does and ignores the rest', () => {
    const home = homeWithCredentials(
      'parse',
      '\uFEFF# team credentials\n[other]\nmlflow_tracking_username = wrong\n\n[mlflow]\nMLFLOW_TRACKING_USERNAME = alice\n; a comment\nmlflow_tracking_password: p=ss:word \n',
    );
    const path = defaultCredentialsPath({ HOME: home })!;
    expect(path).toBe(join(home, '.mlflow', 'credentials'));
    expect(readMlflowCredentialsFile(path)).toEqual({ path, username: 'alice', password: 'p=ss:word' });
    expect(readMlflowCredentialsFile(join(root, 'missing'))).toBeUndefined();
    expect(readMlflowCredentialsFile(join(homeWithCredentials('nosection', '[default]\nx = 1\n'), '.mlflow', 'credentials'))).toBeUndefined();
    // An injected environment without HOME never reads the developer's real file.
    expect(defaultCredentialsPath({})).toBeUndefined();
  });

  it('gives Basic auth; the env vars win field by field; credentialsFile: false ignores it; the password never shows', async () => {
    const server = await experimentServer();
    try {
      const home = homeWithCredentials('auth', '[mlflow]\nmlflow_tracking_username = alice\nmlflow_tracking_password = file-secret-123\n');
      const fromFile = createTrackingClient({ trackingUri: server.url, env: { HOME: home } });
      await fromFile.getExperiment('0');
      await createTrackingClient({ trackingUri: server.url, env: { HOME: home, MLFLOW_TRACKING_USERNAME: 'bob' } }).getExperiment('0');
      await createTrackingClient({ trackingUri: server.url, credentialsFile: false, env: { HOME: home, MLFLOW_TRACKING_TOKEN: 'tok' } }).getExperiment('0');
      await createTrackingClient({ trackingUri: server.url, credentialsFile: join(home, '.mlflow', 'credentials'), env: {} }).getExperiment('0');
      expect(server.requests.map((r) => r.headers.authorization)).toEqual([
        basic('alice', 'file-secret-123'),
        basic('bob', 'file-secret-123'),
        'Bearer tok',
        basic('alice', 'file-secret-123'),
      ]);
      expect(fromFile.describe()).not.toContain('file-secret-123');
    } finally {
      await server.close();
    }
  });
});

describeWithServers('~/.mlflow/credentials, held to MLflow', () => {
  it('sends the same Authorization header as MLflow’s Python client reading the same file', async () => {
    const server = await experimentServer();
    try {
      const home = homeWithCredentials('python', '[mlflow]\nmlflow_tracking_username = carol\nmlflow_tracking_password = s3cr:et\n');
      await createTrackingClient({ trackingUri: server.url, env: { HOME: home } }).getExperiment('0');
      const env: Record<string, string> = { HOME: home, MLFLOW_TRACKING_USERNAME: '', MLFLOW_TRACKING_PASSWORD: '', MLFLOW_TRACKING_TOKEN: '' };
      await runPython(
        'import sys\nfrom mlflow import MlflowClient\nMlflowClient(tracking_uri=sys.argv[1]).get_experiment("0")\n',
        { args: [server.url], env },
      );
      const headers = server.requests.map((r) => r.headers.authorization);
      expect(headers).toHaveLength(2);
      expect(headers[0]).toBe(basic('carol', 's3cr:et'));
      expect(headers[1]).toBe(headers[0]);
    } finally {
      await server.close();
    }
  });
});

describe('mutual TLS (MLFLOW_TRACKING_CLIENT_CERT_PATH)', () => {
  const dir = join(root, 'tls');
  let server: Server;
  let url: string;
  const clientSubjects: Array<string | undefined> = [];

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test-ca');
    for (const [name, cn] of [
      ['server', '127.0.0.1'],
      ['client', 'pipeline-client'],
    ] as const) {
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
      writeFileSync(join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
    }
    // One PEM with certificate and key, the form MLflow (requests' cert=) takes.
    writeFileSync(join(dir, 'client-bundle.pem'), Buffer.concat([readFileSync(join(dir, 'client.pem')), readFileSync(join(dir, 'client.key'))]));
    server = createServer(
      { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')), ca: readFileSync(join(dir, 'ca.pem')), requestCert: true, rejectUnauthorized: true },
      (req, res) => {
        clientSubjects.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(experimentAnswer);
      },
    );
    server.on('connection', () => connectionCount++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('presents the client certificate from the env var, with the CA bundle from MLFLOW_TRACKING_SERVER_CERT_PATH', async () => {
    const client = createTrackingClient({
      trackingUri: url,
      env: { MLFLOW_TRACKING_SERVER_CERT_PATH: join(dir, 'ca.pem'), MLFLOW_TRACKING_CLIENT_CERT_PATH: join(dir, 'client-bundle.pem') },
    });
    expect((await client.getExperiment('0')).experimentId).toBe('0');
    expect(clientSubjects).toEqual(['pipeline-client']);
  });

  /** TCP connections the server accepted: one per attempt. */
  const connections = (): number => connectionCount;
  let connectionCount = 0;

  it('without a client certificate the server refuses the handshake: a ConfigError naming MLFLOW_TRACKING_CLIENT_CERT_PATH at the first attempt, nothing served', async () => {
    const before = connections();
    const client = createTrackingClient({ trackingUri: url, caCertPath: join(dir, 'ca.pem'), retry: { maxRetries: 3, backoffFactor: 0.01 }, env: {} });
    const error = await client.getExperiment('0').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({ message: expect.stringContaining("the server refused this client's TLS certificate"), hint: expect.stringContaining('MLFLOW_TRACKING_CLIENT_CERT_PATH') });
    expect(connections() - before).toBe(1);
    expect(clientSubjects).toEqual(['pipeline-client']);
  });

  it('a server certificate this machine does not trust is a ConfigError naming MLFLOW_TRACKING_SERVER_CERT_PATH, not retried', async () => {
    const before = connections();
    const client = createTrackingClient({ trackingUri: url, retry: { maxRetries: 3, backoffFactor: 0.01 }, env: {} });
    const error = await client.getExperiment('0').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({
      message: expect.stringMatching(/^GET https:\/\/127\.0\.0\.1:\d+\/\S* failed: this machine does not trust the server's TLS certificate \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)\. /),
      hint: expect.stringContaining('MLFLOW_TRACKING_SERVER_CERT_PATH'),
    });
    expect((error as Error).message).not.toContain('\n');
    expect(connections() - before).toBe(1);
    // The certificate names 127.0.0.1, not localhost: that is a name the hint points at.
    const byName = createTrackingClient({ trackingUri: url.replace('127.0.0.1', 'localhost'), caCertPath: join(dir, 'ca.pem'), retry: { maxRetries: 3, backoffFactor: 0.01 }, env: {} });
    await expect(byName.getExperiment('0')).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining("the server's TLS certificate is for another host name (ERR_TLS_CERT_ALTNAME_INVALID)") });
  });

  it('https:// to a plain-HTTP server says to use http://, at the first attempt', async () => {
    const plain = await startTestServer((_req, res) => void res.end('{}'));
    try {
      const client = createTrackingClient({ trackingUri: plain.url.replace('http://', 'https://'), retry: { maxRetries: 3, backoffFactor: 0.01 }, env: {} });
      const error = await client.getExperiment('0').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ message: expect.stringContaining('the server did not answer in TLS'), hint: expect.stringContaining('use http:// instead of https://') });
      expect(plain.requests).toHaveLength(0);
    } finally {
      await plain.close();
    }
  });

  it('an unreadable certificate path is a ConfigError naming the variable', () => {
    let error: unknown;
    try {
      createTrackingClient({ trackingUri: url, env: { MLFLOW_TRACKING_CLIENT_CERT_PATH: join(dir, 'nope.pem') } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toMatch(/MLFLOW_TRACKING_CLIENT_CERT_PATH/);
    expect((error as ConfigError).hint).toMatch(/private key/);
    expect(() => createTrackingClient({ trackingUri: url, caCertPath: join(dir, 'nope-ca.pem'), env: {} })).toThrow(/MLFLOW_TRACKING_SERVER_CERT_PATH/);
  });

  /** A directory holding `files` (name → contents), for MLFLOW_TRACKING_SERVER_CERT_PATH. */
  const caDirectory = (name: string, files: Record<string, string | Buffer>): string => {
    const path = join(dir, name);
    mkdirSync(path, { recursive: true });
    for (const [file, contents] of Object.entries(files)) writeFileSync(join(path, file), contents);
    return path;
  };

  it('trusts a directory of CA certificates, as MLflow’s client does (requests hands it to OpenSSL as ca_cert_dir): <hash>.0, *.pem and *.crt files', async () => {
    const ca = readFileSync(join(dir, 'ca.pem'));
    // The name `openssl rehash` gives the CA, the one OpenSSL looks it up by.
    const hash = execFileSync('openssl', ['x509', '-hash', '-noout', '-in', join(dir, 'ca.pem')], { encoding: 'utf8' }).trim();
    const directories = [
      // Beside the CA: files OpenSSL does not read as certificates (a key, a CRL's name, a note).
      caDirectory('ca-rehashed', { [`${hash}.0`]: ca, 'server-key.pem': readFileSync(join(dir, 'server.key')), [`${hash}.r0`]: 'not a CRL', 'README.txt': 'corporate CAs' }),
      caDirectory('ca-pem', { 'corp-ca.pem': ca }),
      caDirectory('ca-crt', { 'corp-ca.crt': ca }),
    ];
    const before = clientSubjects.length;
    for (const caDir of directories) {
      const client = createTrackingClient({
        trackingUri: url,
        retry: { maxRetries: 0 },
        env: { MLFLOW_TRACKING_SERVER_CERT_PATH: caDir, MLFLOW_TRACKING_CLIENT_CERT_PATH: join(dir, 'client-bundle.pem') },
      });
      expect((await client.getExperiment('0')).experimentId).toBe('0');
    }
    expect(clientSubjects.slice(before)).toEqual(['pipeline-client', 'pipeline-client', 'pipeline-client']);
  });

  it('skips a dangling link in a CA directory, as OpenSSL does (/etc/ssl/certs keeps links to CAs since removed), and trusts the rest', async () => {
    const caDir = caDirectory('ca-dangling', { 'corp-ca.pem': readFileSync(join(dir, 'ca.pem')) });
    // Sorted before the CA, as `openssl rehash` names links: the CA would never be reached if the link stopped the read.
    symlinkSync(join(dir, 'removed-ca.pem'), join(caDir, '0badc0de.0'));
    const client = createTrackingClient({
      trackingUri: url,
      retry: { maxRetries: 0 },
      env: { MLFLOW_TRACKING_SERVER_CERT_PATH: caDir, MLFLOW_TRACKING_CLIENT_CERT_PATH: join(dir, 'client-bundle.pem') },
    });
    expect((await client.getExperiment('0')).experimentId).toBe('0');
  });

  it('a CA directory without a certificate is a ConfigError naming MLFLOW_TRACKING_SERVER_CERT_PATH and the file names read, before it connects', async () => {
    const empty = caDirectory('ca-none', { 'README.txt': 'corporate CAs', 'corp-ca.der': Buffer.from([0x30, 0x82]) });
    const before = connections();
    const client = createTrackingClient({
      trackingUri: url,
      retry: { maxRetries: 3, backoffFactor: 0.01 },
      env: { MLFLOW_TRACKING_SERVER_CERT_PATH: empty, MLFLOW_TRACKING_CLIENT_CERT_PATH: join(dir, 'client-bundle.pem') },
    });
    const error = await client.getExperiment('0').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({
      message: expect.stringMatching(/^The CA directory \S+ca-none \(caCertPath \/ MLFLOW_TRACKING_SERVER_CERT_PATH\) holds no PEM certificate\. /),
      hint: expect.stringContaining('PEM files named *.pem or *.crt'),
      issues: [{ path: 'MLFLOW_TRACKING_SERVER_CERT_PATH', message: expect.stringContaining('<hash>.0') }],
    });
    expect(connections() - before).toBe(0);
  });

  it('with an http:// tracking URI a missing CA bundle is refused at the first https request, before it connects, with the same ConfigError', async () => {
    const missing = join(dir, 'nope-ca.pem');
    const refusedUpFront = (() => {
      try {
        resolveMlflowConnection({ trackingUri: url, env: { MLFLOW_TRACKING_SERVER_CERT_PATH: missing } });
      } catch (error) {
        return error as ConfigError;
      }
      throw new Error('an https:// tracking URI with a missing CA bundle was not refused up front');
    })();
    const tracking = await experimentServer();
    try {
      const connection = resolveMlflowConnection({ trackingUri: tracking.url, retry: { maxRetries: 3, backoffFactor: 0.01 }, env: { MLFLOW_TRACKING_SERVER_CERT_PATH: missing } });
      if (connection.kind !== 'rest') throw new Error('expected a REST connection');
      // http:// never reads the CA bundle, as requests never does (adapters.py cert_verify).
      await connection.http.request({ method: 'GET', url: `${tracking.url}/api/2.0/mlflow/experiments/get?experiment_id=0` });
      expect(tracking.requests).toHaveLength(1);
      const before = connections();
      for (let attempt = 0; attempt < 2; attempt++) {
        const error = await connection.http.request({ method: 'PUT', url: `${url}/artifacts/model.bin`, body: 'weights' }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigError);
        expect(error).toMatchObject({ message: refusedUpFront.message, hint: refusedUpFront.hint, issues: refusedUpFront.issues });
      }
      expect(refusedUpFront.message).toContain(`The certificate file ${missing} (caCertPath / MLFLOW_TRACKING_SERVER_CERT_PATH) cannot be read.`);
      expect(connections() - before).toBe(0);
    } finally {
      await tracking.close();
    }
  });
});

describeWithServers('a CA bundle path that does not exist, with an http:// MLflow server', () => {
  it('does not stop an upload, as it does not stop MLflow’s Python client', async () => {
    const { url } = mlflowServer();
    const { runId } = await serverRun(url);
    const src = writeTree(scratch(), { 'metrics.json': '{"acc": 0.93}' });
    const env = { MLFLOW_TRACKING_SERVER_CERT_PATH: join(root, 'no-such-ca.pem') };
    const uploader = new ArtifactUploader({ stage: 'training', runId, trackingUri: url, env, verify: true });
    expect(await uploader.uploadFile(join(src, 'metrics.json'))).toMatchObject({ status: 'uploaded', runId });
    // MLflow's client with the same variable: it logs a file and reads back ours.
    const back = await runPython(
      `import sys, os
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1])
client.log_artifact(sys.argv[2], sys.argv[3], "python")
print(open(client.download_artifacts(sys.argv[2], "metrics.json", sys.argv[4])).read())
`,
      { args: [url, runId, join(src, 'metrics.json'), scratch()], env },
    );
    expect(back.trim()).toBe('{"acc": 0.93}');
    const listed = await createTrackingClient({ trackingUri: url, env }).listArtifacts(runId, 'python');
    expect(listed.files.map((f) => f.path)).toEqual(['python/metrics.json']);
  });
});
